"""Forms of the residents' sign-in pages."""

from django import forms
from django.contrib.auth.forms import SetPasswordForm
from django.utils.translation import gettext_lazy as _


class OtpForm(forms.Form):
    otp_token = forms.RegexField(regex=r"^\d{6,8}$", max_length=8, label=_("One-time code"))


class InvitationPasswordForm(SetPasswordForm):
    """Django's SetPasswordForm (AUTH_PASSWORD_VALIDATORS) plus the optional second factor."""

    with_totp = forms.BooleanField(required=False, label=_("Also protect the account with a one-time code app"))


class PasswordResetRequestForm(forms.Form):
    identifier = forms.CharField(max_length=254, label=_("Phone or e-mail"))
