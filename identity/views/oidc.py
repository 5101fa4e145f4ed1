"""Residents sign in at the OpenID Connect provider; the provider logs them out of here.

`provider_login_start` sends the browser to the provider (code + PKCE S256, `state`, `nonce`);
`provider_callback` checks the answer (state, `iss`, the code exchange and the ID token, see
identity.oidc), finds the linked resident (identity.services.signin) and signs them in, then
returns to the `/o/authorize/` request that started it. Anything refused is an audit event and
a page saying so (403), never a new resident.

`backchannel_logout` is the OIDC Back-Channel Logout endpoint the provider calls (no cookies,
no CSRF): a valid logout token revokes that resident's tokens and sessions here.
"""

import logging
import time
from urllib.parse import urlencode

import requests
from authlib.integrations.base_client.errors import OAuthError
from django.conf import settings
from django.contrib.auth import login
from django.core.cache import cache
from django.http import HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext_noop
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST
from joserfc.errors import JoseError

from audit.actions import Action, Outcome
from identity import oidc, signin_audit
from identity.services.revocation import user_access_revoke
from identity.services.signin import SignInRefused, links_for_logout, provider_login_resolve

logger = logging.getLogger(__name__)

SESSION_ACR = "identity.acr"
SESSION_METHOD = "identity.method"
SESSION_STEP_UP = "identity.step_up_tried"
_MODEL_BACKEND = "django.contrib.auth.backends.ModelBackend"


def _safe_next(request, url: str) -> str:
    if url and url_has_allowed_host_and_scheme(url, allowed_hosts={request.get_host()},
                                               require_https=request.is_secure()):
        return url
    return reverse("identity:signed-in")


# What a refused resident reads (translated in identity/locale); causes not listed get the first.
REFUSAL_MESSAGES = {
    "unlinked": gettext_noop(
        "Your account at the identity provider is not linked to a resident here. Ask your management "
        "company to link it."
    ),
    "ambiguous": gettext_noop(
        "Your account at the identity provider matches more than one resident. Ask your management "
        "company to link it."
    ),
    "claim_unverified": gettext_noop(
        "The identity provider has not verified your phone or e-mail yet. Verify it there, then try again."
    ),
    "inactive": gettext_noop("This account is disabled. Ask your management company."),
    "acr_insufficient": gettext_noop(
        "Opening doors needs a sign-in with a second factor at the identity provider."
    ),
    "provider_unavailable": gettext_noop("The identity provider cannot be reached. Try again later."),
    "provider_manages_passwords": gettext_noop("Passwords are managed by the identity provider."),
    "failed": gettext_noop("The sign-in could not be completed. Start again from the app."),
}


def refused_page(request, cause: str, status: int = 403):
    message = REFUSAL_MESSAGES.get(cause.split(".")[0], REFUSAL_MESSAGES["failed"])
    return render(request, "identity/refused.html", {"cause": cause, "message": message}, status=status)


def redirect_uri() -> str:
    return settings.IDENTITY_PUBLIC_URL + reverse("identity:oidc-callback")


@require_GET
@never_cache
def provider_login_start(request):
    if not oidc.configured():
        return redirect("resident-login")
    app = oidc.provider()
    extra = {}
    step_up = request.GET.get("step_up") == "1" and settings.IDENTITY_OIDC_DOOR_ACR
    if step_up:
        extra = {"acr_values": " ".join(settings.IDENTITY_OIDC_DOOR_ACR)}
    try:
        authorization = app.create_authorization_url(redirect_uri(), **extra)
    except (requests.RequestException, oidc.ProviderError, ValueError) as exc:
        logger.warning("identity provider unavailable", extra={"error": type(exc).__name__})
        return refused_page(request, "provider_unavailable", status=503)
    app.save_authorize_data(
        request, redirect_uri=redirect_uri(), next=_safe_next(request, request.GET.get("next", "")), **authorization
    )
    return redirect(authorization["url"])


def refuse_login(request, cause: str, *, claims=None, status: int = 403):
    claims = claims or {}
    signin_audit.login_refused(
        request=request, method="oidc", cause=cause, acr=claims.get("acr"), amr=claims.get("amr"),
    )
    return refused_page(request, cause, status)


@require_GET
@never_cache
def provider_callback(request):
    if not oidc.configured():
        return redirect("resident-login")
    app = oidc.provider()
    state = request.GET.get("state", "")
    state_data = app.framework.get_state_data(request.session, state) if state else None
    if state_data is None:
        return refuse_login(request, "state", status=400)
    if request.GET.get("error"):
        app.framework.clear_state_data(request.session, state)
        return refuse_login(request, "provider_error")
    issuer = request.GET.get("iss")
    if issuer is not None and issuer.rstrip("/") != settings.IDENTITY_OIDC_ISSUER:
        app.framework.clear_state_data(request.session, state)
        return refuse_login(request, "iss")
    try:
        token = app.authorize_access_token(
            request, claims_options=oidc.id_token_claims_options(), leeway=settings.IDENTITY_OIDC_CLOCK_SKEW_S,
        )
    except (OAuthError, JoseError, oidc.ProviderError, ValueError) as exc:
        cause = getattr(exc, "error", "") or type(exc).__name__
        return refuse_login(request, f"id_token.{signin_audit.code(cause, max_length=30)}")
    except requests.RequestException:
        return refuse_login(request, "provider_unavailable", status=503)
    claims = dict(token.get("userinfo") or {})
    if not claims or not oidc.audience_includes_us(claims):
        return refuse_login(request, "id_token.missing", claims=claims)
    try:
        link = provider_login_resolve(claims=claims)
    except SignInRefused as refused:
        return refuse_login(request, refused.cause, claims=claims)

    setattr(request, signin_audit.SIGNIN_DETAILS_ATTR,
            {"method": "oidc", "acr": claims.get("acr"), "amr": claims.get("amr")})
    login(request, link.resident.user, backend=_MODEL_BACKEND)
    request.session[SESSION_METHOD] = "oidc"
    request.session[SESSION_ACR] = str(claims.get("acr") or "")
    return redirect(_safe_next(request, state_data.get("next", "")))


@never_cache
def signed_in(request):
    return render(request, "identity/signed_in.html")


STEP_UP_RETRY_S = 300


def step_up_tried(request) -> bool:
    """Whether this session went back to the provider for a stronger login in the last minutes."""
    return time.time() - request.session.get(SESSION_STEP_UP, 0) < STEP_UP_RETRY_S


def step_up_redirect(request):
    """Back to the provider for a stronger login (acr_values), returning to this request."""
    request.session[SESSION_STEP_UP] = time.time()
    query = urlencode({"next": request.get_full_path(), "step_up": "1"})
    return redirect(f"{reverse('identity:oidc-start')}?{query}")


@csrf_exempt
@require_POST
@never_cache
def backchannel_logout(request):
    """OIDC Back-Channel Logout 1.0: 200 once the named resident's tokens are revoked, 400 for a
    token we refuse (bad signature, issuer, audience, event, replayed jti, ...)."""
    if not oidc.configured():
        return JsonResponse({"error": "invalid_request"}, status=400)
    try:
        claims = oidc.verify_logout_token(request.POST.get("logout_token", ""))
    except (oidc.ProviderError, requests.RequestException) as exc:
        return _logout_refused(request, signin_audit.code(str(exc).replace("logout token: ", ""), max_length=30))
    ttl = settings.IDENTITY_OIDC_CLOCK_SKEW_S * 2 + 3600
    if not cache.add(f"identity:oidc:logout-jti:{claims['jti']}", 1, timeout=ttl):
        return _logout_refused(request, "replayed")
    for link in links_for_logout(sub=claims.get("sub"), sid=claims.get("sid")):
        user_access_revoke(user=link.resident.user, reason="backchannel_logout", request=request)
    response = HttpResponse(status=200)
    response["Cache-Control"] = "no-store"
    return response


def _logout_refused(request, cause: str):
    signin_audit.record_failure(
        action=Action.AUTH_TOKEN_REVOKE, outcome=Outcome.DENIED, reason=f"backchannel_logout.{cause}",
        object_type="logout_token", request=request,
    )
    response = JsonResponse({"error": "invalid_request"}, status=400)
    response["Cache-Control"] = "no-store"
    return response
