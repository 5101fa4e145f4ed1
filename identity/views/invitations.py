"""A resident opens an invitation or reset link, sets a password, optionally a one-time code app.

The token leaves the URL at once: opening the link keeps it in the session and redirects to a
page without it (no token in Referer headers, history or later logs), like Django's own
password reset. Pages answer the same whether or not an account exists.
"""

import base64
import time

import qrcode
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import transaction
from django.shortcuts import redirect, render
from django.utils.safestring import mark_safe
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_GET
from qrcode.image.svg import SvgPathImage

from audit.actions import Action, Outcome
from audit.services import record
from core.auth.views import _limited
from core.models import EncryptedTOTPDevice
from core.security.identifiers import user_ref
from identity import oidc, signin_audit
from identity.forms import InvitationPasswordForm, OtpForm, PasswordResetRequestForm
from identity.services.invitations import (
    InvitationInvalid,
    invitation_for_token,
    invitation_redeem,
    invitation_refused,
    password_reset_request,
)
from identity.sessions import pending_step
from identity.views.oidc import refused_page

TOKEN_KEY = "identity.invitation_token"  # noqa: S105 - a session key name
TOTP_KEY = "identity.totp_enrolment"
TOTP_TTL_S = 600


def _invalid(request, cause: str):
    invitation_refused(cause=cause, request=request)
    request.session.pop(TOKEN_KEY, None)
    return render(request, "identity/invitation_invalid.html", status=404)


@require_GET
@never_cache
def invitation_open(request, token: str):
    try:
        invitation_for_token(token)
    except InvitationInvalid as invalid:
        response = _invalid(request, invalid.cause)
    else:
        request.session[TOKEN_KEY] = token
        response = redirect("identity:invitation-set-password")
    response["Referrer-Policy"] = "no-referrer"
    return response


@sensitive_post_parameters("new_password1", "new_password2")
@csrf_protect
@never_cache
def invitation_set_password(request):
    token = request.session.get(TOKEN_KEY)
    if not token:
        return _invalid(request, "no_session")
    try:
        invitation = invitation_for_token(token)
    except InvitationInvalid as invalid:
        return _invalid(request, invalid.cause)
    user = invitation.resident.user
    form = InvitationPasswordForm(user, request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            invitation_redeem(token=token, password=form.cleaned_data["new_password1"], request=request)
        except InvitationInvalid as invalid:
            return _invalid(request, invalid.cause)
        except ValidationError as exc:
            form.add_error("new_password2", exc)
        else:
            request.session.pop(TOKEN_KEY, None)
            if form.cleaned_data["with_totp"]:
                request.session[TOTP_KEY] = {"user": user.pk, "at": time.time()}
                return redirect("identity:totp-setup")
            return redirect("identity:password-set")
    return render(request, "identity/set_password.html", {"form": form, "purpose": invitation.purpose})


def _qr_svg(uri: str) -> str:
    image = qrcode.make(uri, image_factory=SvgPathImage)
    return mark_safe(image.to_string(encoding="unicode"))  # noqa: S308 - our own SVG, no user input


@sensitive_post_parameters("otp_token")
@csrf_protect
@never_cache
def totp_setup(request):
    """Enrol a TOTP app for the resident who just set a password (the code confirms it)."""
    pending = pending_step(request.session, TOTP_KEY, TOTP_TTL_S)
    if pending is None:
        return redirect("resident-login")
    user = get_user_model().objects.get(pk=pending["user"])
    device = EncryptedTOTPDevice.objects.filter(user=user, confirmed=False, name="resident").first()
    if device is None:
        device = EncryptedTOTPDevice.objects.create(user=user, name="resident", confirmed=False)
    form = OtpForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        if device.verify_token(form.cleaned_data["otp_token"]):
            with transaction.atomic():
                EncryptedTOTPDevice.objects.filter(user=user, confirmed=True).delete()
                device.confirmed = True
                device.save(update_fields=["confirmed"])
                record(action=Action.IDENTITY_TOTP_ENROL, outcome=Outcome.SUCCESS, object_type="user",
                       object_ref=user_ref(user), reason="totp", source_ip=signin_audit.client_address(request))
            request.session.pop(TOTP_KEY, None)
            return redirect("identity:password-set")
        form.add_error("otp_token", _("Wrong or expired code."))
    secret = base64.b32encode(device.bin_key).decode()
    return render(request, "identity/totp_setup.html", {
        "form": form, "qr_svg": _qr_svg(device.config_url), "secret": secret,
    })


@never_cache
def password_set(request):
    return render(request, "identity/password_set.html")


@csrf_protect
@never_cache
def password_reset(request):
    """Ask for a reset link by phone or e-mail; the answer is the same whether or not it is known."""
    if oidc.configured():
        return refused_page(request, "provider_manages_passwords", status=404)
    form = PasswordResetRequestForm(request.POST or None)
    if request.method == "POST":
        limited = _limited(request, "password-reset", settings.IDENTITY_RESET_RATE_PER_IP, fail_open=False)
        if limited:
            return limited
        if form.is_valid():
            password_reset_request(identifier=form.cleaned_data["identifier"], request=request)
            return render(request, "identity/password_reset_sent.html")
    return render(request, "identity/password_reset.html", {"form": form})
