"""The admin site: every page needs a verified second factor (TOTP or a backup code).

`admin.site` itself becomes a `SmarthomeAdminSite` (the way django-two-factor-auth documents
it), so every app keeps registering with `admin.site` and third-party admins (axes, auditlog,
django-otp, oauth2_provider) fall under the same rule. Apps add their own admin pages (the
building dashboard of `access`) with `add_view`; they are wrapped by `admin_view` and need the
same verified login.

A staff user who signed in with a password but has no confirmed device is sent to enrolment
(QR code) instead of the admin; anyone else without a verified session goes to the 2FA login.

A query string carrying a NUL character (a search term, a filter) is refused with 400 before any
page runs: no database stores one, and PostgreSQL refuses it in a query (form fields refuse it
themselves).
"""

import functools

from django.contrib import admin
from django.contrib.auth import REDIRECT_FIELD_NAME
from django.http import HttpResponseBadRequest
from django.shortcuts import redirect
from django.urls import path, reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext_lazy as _
from two_factor.admin import AdminSiteOTPRequired
from two_factor.utils import default_device

from core.portal.labels import LabelledAutocompleteJsonView
from core.security.staff_changes import account_change

# (route, view, name) of admin pages that apps add (see add_view); mounted before the model pages.
_extra_views: list[tuple[str, object, str]] = []


def add_view(route: str, view, name: str) -> None:
    """Mount `view` at /admin/<route> under the name `admin:<name>`, behind the verified login."""
    if all(existing != name for _, _, existing in _extra_views):
        _extra_views.append((route, view, name))


class SmarthomeAdminSite(AdminSiteOTPRequired):
    site_header = _("smarthome · property management")
    site_title = _("smarthome portal")
    index_title = _("Buildings, residents, devices and partners")
    index_template = "admin/smarthome_index.html"
    site_url = None  # no public site behind the portal: no "view site" link

    def autocomplete_view(self, request):
        """Autocomplete results named by the admin's `choice_label` (core.portal.labels)."""
        return LabelledAutocompleteJsonView.as_view(admin_site=self)(request)

    def login(self, request, extra_context=None):
        user = request.user
        unverified_staff = user.is_authenticated and user.is_active and user.is_staff and not user.is_verified()
        # two_factor's login asks for a token only from the user's default device; so do we.
        if unverified_staff and default_device(user) is None:
            return redirect(self._enrolment_url(request))
        return super().login(request, extra_context)

    def password_change(self, request, extra_context=None):
        """The admin's own "change password" page: audited like every account change."""
        if request.method != "POST" or not request.user.is_authenticated:
            return super().password_change(request, extra_context)
        with account_change(actor=request.user, user_id=request.user.pk):
            return super().password_change(request, extra_context)

    def _enrolment_url(self, request) -> str:
        target = request.GET.get(REDIRECT_FIELD_NAME, "")
        if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
            target = reverse("admin:index", current_app=self.name)
        # two_factor's setup wizard returns to the session's "next" once the device is confirmed.
        request.session["next"] = target
        return reverse("two_factor:setup")

    def admin_view(self, view, cacheable=False):
        protected = super().admin_view(view, cacheable)

        @functools.wraps(protected)
        def without_nul(request, *args, **kwargs):
            if any("\x00" in key or "\x00" in value for key, value in request.GET.items()):
                return HttpResponseBadRequest(_("A query parameter contains a NUL character."))
            return protected(request, *args, **kwargs)

        return without_nul

    def get_urls(self):
        return [
            *(path(route, self.admin_view(view), name=name) for route, view, name in _extra_views),
            *super().get_urls(),
        ]


def install() -> admin.AdminSite:
    """Turn the default `admin.site` into the OTP-required site (idempotent) and return it."""
    if not isinstance(admin.site, SmarthomeAdminSite):
        admin.site.__class__ = SmarthomeAdminSite
    return admin.site


admin_site = install()
