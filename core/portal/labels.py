"""Human labels in the admin's choices, and going back to the page a form was opened from.

A ModelAdmin may define `choice_label(obj) -> str`: its rows are then named that way wherever
another admin offers them - select boxes, the autocomplete widget's chosen value and its search
results - instead of `str(obj)` (which stays free of personal data for logs and the change
history: "Resident #12" becomes "Иванов Иван Иванович, Дом 1, кв. 12" only on staff pages).

`ReturnToNextMixin`: an add or change form opened with `?next=<path on this site>` (from a
resident's page: "add a car") returns there once saved.
"""

from django.contrib.admin.views.autocomplete import AutocompleteJsonView
from django.shortcuts import redirect
from django.utils.http import url_has_allowed_host_and_scheme


def choice_label_of(admin_site, model):
    return getattr(admin_site._registry.get(model), "choice_label", None)


class LabelledAutocompleteJsonView(AutocompleteJsonView):
    """The admin's autocomplete endpoint, naming results by the searched admin's `choice_label`."""

    def serialize_result(self, obj, to_field_name):
        result = super().serialize_result(obj, to_field_name)
        label = getattr(self.model_admin, "choice_label", None)
        if label is not None:
            result["text"] = str(label(obj))
        return result


class ChoiceLabelsMixin:
    """ModelAdmin/inline mixin: foreign-key choices named by the related admin's `choice_label`."""

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        field = super().formfield_for_foreignkey(db_field, request, **kwargs)
        label = choice_label_of(self.admin_site, db_field.remote_field.model)
        if field is not None and label is not None:
            field.label_from_instance = label
        return field


def safe_next(request) -> str | None:
    """The `next` query parameter when it is a path on this site, else None."""
    target = request.GET.get("next", "")
    if target and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()},
                                                  require_https=request.is_secure()):
        return target
    return None


class ReturnToNextMixin:
    """After saving a form opened with a safe `?next=`, go there (not to the list)."""

    def response_add(self, request, obj, post_url_continue=None):
        response = super().response_add(request, obj, post_url_continue)
        return self._to_next(request, response)

    def response_change(self, request, obj):
        return self._to_next(request, super().response_change(request, obj))

    @staticmethod
    def _to_next(request, response):
        target = safe_next(request)
        if target and not any(key in request.POST for key in ("_continue", "_addanother", "_saveasnew")) \
                and response.status_code == 302:
            return redirect(target)
        return response
