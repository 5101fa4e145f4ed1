"""Our OAuth2 endpoints with the sign-in audit and the provider's `acr` rule around them.

They are core.auth's views (django-oauth-toolkit) unchanged in what they issue; these
subclasses add: an audit event for every refused token request and every client revocation
(issued and refreshed tokens are recorded from django-oauth-toolkit's `app_authorized` signal),
and, with IDENTITY_OIDC_DOOR_ACR set, a provider login of at least that `acr` before the app
may get a scope that opens doors (IDENTITY_OIDC_DOOR_SCOPES).
"""

import hashlib
import json

from django.conf import settings
from oauth2_provider.models import get_access_token_model, get_refresh_token_model

from audit.actions import Action, Outcome
from core.auth.views import RateLimitedTokenView, ResidentAuthorizationView
from core.auth.views import RevokeTokenView as BaseRevokeTokenView
from identity import oidc, signin_audit
from identity.views.oidc import SESSION_ACR, refuse_login, step_up_redirect, step_up_tried


def _door_acr_missing(request) -> bool:
    if not (oidc.configured() and settings.IDENTITY_OIDC_DOOR_ACR and request.user.is_authenticated):
        return False
    requested = set((request.POST.get("scope") or request.GET.get("scope") or "").split())
    if not requested & set(settings.IDENTITY_OIDC_DOOR_SCOPES):
        return False
    return request.session.get(SESSION_ACR, "") not in settings.IDENTITY_OIDC_DOOR_ACR


class AuthorizationView(ResidentAuthorizationView):
    def dispatch(self, request, *args, **kwargs):
        if _door_acr_missing(request):
            if request.method == "GET" and not step_up_tried(request):
                return step_up_redirect(request)
            return refuse_login(request, "acr_insufficient")
        return super().dispatch(request, *args, **kwargs)


def _error_code(response) -> str:
    if response.status_code == 429:
        return "rate_limited"
    try:
        return str(json.loads(response.content or b"{}").get("error") or response.status_code)
    except (ValueError, AttributeError):
        return str(response.status_code)


class TokenView(RateLimitedTokenView):
    def post(self, request, *args, **kwargs):
        response = super().post(request, *args, **kwargs)
        # past the first refusal of a rate-limit window a flood is refused without database work
        # (the first refusal is the window's audit event; nginx's access log has every request)
        if response.status_code >= 400 and not getattr(response, "repeated_refusal", False):
            signin_audit.token_refused(request=request, status=response.status_code, error=_error_code(response))
        return response


def _token_owner(raw: str):
    checksum = hashlib.sha256(raw.encode()).hexdigest()
    for model in (get_access_token_model(), get_refresh_token_model()):
        token = model.objects.select_related("user").filter(token_checksum=checksum).first()
        if token is not None:
            return token.user
    return None


class RevokeTokenView(BaseRevokeTokenView):
    """RFC 7009: the client gives up a token (the app's sign-out)."""

    def post(self, request, *args, **kwargs):
        owner = _token_owner(request.POST.get("token", ""))
        response = super().post(request, *args, **kwargs)
        if response.status_code >= 400:
            signin_audit.token_refused(request=request, status=response.status_code, error=_error_code(response))
        elif owner is not None:
            signin_audit.tokens_revoked(user=owner, count=1, reason="client", actor=owner, request=request)
        else:
            signin_audit.record_failure(
                action=Action.AUTH_TOKEN_REVOKE, outcome=Outcome.FAILURE, reason="client.unknown_token",
                object_type="oauth_token", request=request,
            )
        return response
