"""Admin forms that write through the apps' services.

The admin does not save domain rows itself: `service_save` of the ModelAdmin calls the service
(`building_create`, `resident_update`, ...). So that a service's own checks (a flat of another
company, a plate already taken) come back as form errors instead of a server error, the form's
clean() runs the same call once inside a savepoint that is always rolled back; save_model then
runs it for real. A ModelAdmin whose `service_save` returns None for a case falls back to the
plain model save (recorded by django-auditlog like every admin change).
"""

from django.core.exceptions import ValidationError
from django.db import transaction


class _DryRunDone(Exception):
    """Raised to roll the dry run back."""


def add_service_errors(form, exc: ValidationError) -> None:
    """Attach a service's ValidationError to the form (unknown fields become form-wide errors)."""
    if hasattr(exc, "error_dict"):
        for field, errors in exc.error_dict.items():
            form.add_error(field if field in form.fields else None, errors)
    else:
        form.add_error(None, exc)


class ServiceBackedAdminMixin:
    """ModelAdmin mixin: saves go through `service_save` (see the module docstring)."""

    def service_save(self, request, current, data: dict, change: bool):
        """Call the service; return the saved object, or None to let the admin save the model.

        current: a fresh copy of the row being changed (None when adding);
        data: the form's cleaned_data.
        """
        return None

    @staticmethod
    def _fresh(obj):
        return type(obj)._default_manager.get(pk=obj.pk)

    def get_form(self, request, obj=None, change=False, **kwargs):
        form_class = super().get_form(request, obj, change=change, **kwargs)
        model_admin = self

        class ServiceCheckedForm(form_class):
            def clean(self):
                cleaned = super().clean()
                if self.errors:
                    return cleaned
                current = model_admin._fresh(self.instance) if change else None
                try:
                    with transaction.atomic():
                        model_admin.service_save(request, current, cleaned, change)
                        raise _DryRunDone
                except _DryRunDone:
                    pass
                except ValidationError as exc:
                    add_service_errors(self, exc)
                return cleaned

        ServiceCheckedForm.__name__ = form_class.__name__
        return ServiceCheckedForm

    def save_model(self, request, obj, form, change):
        current = self._fresh(obj) if change else None
        saved = self.service_save(request, current, form.cleaned_data, change)
        if saved is None:
            super().save_model(request, obj, form, change)
            return
        # The admin goes on with `obj` (messages, log entry, inlines, m2m): make it the saved row.
        obj.pk = saved.pk
        obj._state.adding = False
        obj._state.db = saved._state.db
        for field in obj._meta.concrete_fields:
            setattr(obj, field.attname, getattr(saved, field.attname))
