"""The residents' sign-in page behind /o/authorize/.

With an identity provider configured (IDENTITY_OIDC_ISSUER) the page sends the browser to the
provider (identity.views.oidc). Without one, residents sign in here with their phone, e-mail or
username and the password they set through an invitation; a resident who enrolled a one-time
code app is asked for a code next.
"""

import time
from urllib.parse import urlencode

from django.conf import settings
from django.contrib.auth import get_user_model, login
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.debug import sensitive_post_parameters
from django_otp import login as otp_login

from core.auth.views import ResidentLoginView as PasswordLoginView
from core.auth.views import _limited
from core.models import EncryptedTOTPDevice
from identity import oidc, signin_audit
from identity.forms import OtpForm
from identity.sessions import pending_step

PENDING_KEY = "identity.pending_otp"
PENDING_TTL_S = 300


def confirmed_totp(user):
    return EncryptedTOTPDevice.objects.filter(user=user, confirmed=True).first()


class ResidentLoginView(PasswordLoginView):
    def dispatch(self, request, *args, **kwargs):
        if oidc.configured():
            next_url = request.GET.get("next") or request.POST.get("next") or ""
            return redirect(f"{reverse('identity:oidc-start')}?{urlencode({'next': next_url})}")
        return super().dispatch(request, *args, **kwargs)

    def get_context_data(self, **kwargs):
        return {**super().get_context_data(**kwargs), "password_reset_url": reverse("identity:password-reset")}

    def form_valid(self, form):
        user = form.get_user()
        if confirmed_totp(user) is None:
            return super().form_valid(form)
        self.request.session[PENDING_KEY] = {
            "user": user.pk, "backend": user.backend, "at": time.time(), "next": self.get_success_url(),
        }
        return redirect("identity:login-otp")


@sensitive_post_parameters("otp_token")
@csrf_protect
@never_cache
def login_otp(request):
    """Second step for residents with a one-time code app (django-otp throttles wrong codes)."""
    pending = pending_step(request.session, PENDING_KEY, PENDING_TTL_S)
    if pending is None:
        return redirect("resident-login")
    user = get_user_model().objects.filter(pk=pending["user"], is_active=True).first()
    device = confirmed_totp(user) if user else None
    if device is None:
        request.session.pop(PENDING_KEY, None)
        return redirect("resident-login")
    form = OtpForm(request.POST or None)
    if request.method == "POST":
        limited = _limited(request, "login", settings.LOGIN_RATE_PER_IP, fail_open=False)
        if limited:
            return limited
        allowed, _details = device.verify_is_allowed()
        if form.is_valid() and allowed and device.verify_token(form.cleaned_data["otp_token"]):
            del request.session[PENDING_KEY]
            setattr(request, signin_audit.SIGNIN_DETAILS_ATTR, {"method": "password.otp"})
            user.otp_device = device
            login(request, user, backend=pending["backend"])
            otp_login(request, device)
            return redirect(pending["next"])
        setattr(request, signin_audit.SIGNIN_DETAILS_ATTR, {"method": "password.otp"})
        signin_audit.login_failed(request=request, credentials={"username": user.get_username()})
        form.add_error(None, _("Wrong or expired code."))
    return render(request, "identity/login_otp.html", {"form": form})
