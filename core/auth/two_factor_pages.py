"""django-two-factor-auth's pages, with secrets kept out of the database.

Through two_factor's own extension points, no patching:
- the "generator" (TOTP app) method is replaced in two_factor's method registry by
  `EncryptedGeneratorMethod`: the login finds `core.models.EncryptedTOTPDevice` devices and the
  setup wizard (QR code) saves one through `core.auth.otp.totp_device_create`;
- `urlpatterns` are two_factor's, with three views subclassed: the login hashes a typed backup
  code before django-otp's StaticDevice compares it with the stored digests; the backup-codes
  page issues codes through `backup_codes_issue` and shows them once (the rows hold digests);
  "disable" removes the devices through `second_factors_remove`. All three are audited.

`tests/admin/test_two_factor_storage.py` fails if a two_factor upgrade moves any of this.
"""

from django.contrib.auth.forms import AuthenticationForm
from django.shortcuts import redirect
from django.urls import path
from two_factor import urls as two_factor_urls
from two_factor.forms import AuthenticationTokenForm, BackupTokenForm, TOTPDeviceForm
from two_factor.plugins.registry import GeneratorMethod, registry
from two_factor.views import BackupTokensView, DisableView, LoginView

from core.auth.otp import backup_code_lookup_value, backup_codes_issue, second_factors_remove, totp_device_create
from core.models import EncryptedTOTPDevice


class TOTPEnrolmentForm(TOTPDeviceForm):
    """The setup wizard's token step; the device it saves keeps its key encrypted."""

    def save(self):
        return totp_device_create(
            user=self.user, actor=self.user, key=self.key, tolerance=self.tolerance, t0=self.t0, step=self.step,
            drift=self.drift, digits=self.digits,
        )


class EncryptedGeneratorMethod(GeneratorMethod):
    """two_factor's TOTP-app method over EncryptedTOTPDevice (same code, so its pages work unchanged)."""

    def get_devices(self, user):
        return EncryptedTOTPDevice.objects.filter(user=user)

    def recognize_device(self, device):
        return isinstance(device, EncryptedTOTPDevice)

    def get_setup_forms(self, *args):
        return {self.code: TOTPEnrolmentForm}


def install_generator_method() -> None:
    """Put EncryptedGeneratorMethod in place of two_factor's generator method (idempotent)."""
    if not isinstance(registry.get_method(GeneratorMethod.code), EncryptedGeneratorMethod):
        registry.unregister(GeneratorMethod.code)
        registry.register(EncryptedGeneratorMethod())


class BackupCodeForm(BackupTokenForm):
    """The login's backup-code step: the typed code is compared as the digest the rows store."""

    def clean(self):
        code = self.cleaned_data.get("otp_token")
        if code and self.initial_device is not None:
            self.cleaned_data["otp_token"] = backup_code_lookup_value(self.initial_device, code)
        return super().clean()


class StaffLoginView(LoginView):
    form_list = (
        (LoginView.AUTH_STEP, AuthenticationForm),
        (LoginView.TOKEN_STEP, AuthenticationTokenForm),
        (LoginView.BACKUP_STEP, BackupCodeForm),
    )

    def get_prefix(self, request, *args, **kwargs):
        return "login_view"  # two_factor's own (formtools derives it from the class name)


class BackupCodesView(BackupTokensView):
    """Shows how many backup codes are left; "generate" replaces them and shows the new ones once."""

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["remaining"] = context["device"].token_set.count()
        return context

    def form_valid(self, form):
        codes = backup_codes_issue(user=self.request.user, actor=self.request.user, count=self.number_of_tokens)
        return self.render_to_response(self.get_context_data(form=form, codes=codes))


class DisableSecondFactorsView(DisableView):
    def form_valid(self, form):
        second_factors_remove(user=self.request.user, actor=self.request.user)
        return redirect(self.success_url)


_OWN_VIEWS = {"login": StaffLoginView, "backup_tokens": BackupCodesView, "disable": DisableSecondFactorsView}


def _with_own_views(patterns):
    return [
        path(str(pattern.pattern), _OWN_VIEWS[pattern.name].as_view(), name=pattern.name)
        if pattern.name in _OWN_VIEWS else pattern
        for pattern in patterns
    ]


urlpatterns = (_with_own_views(two_factor_urls.urlpatterns[0]), two_factor_urls.urlpatterns[1])
