"""The resident-facing side of the OAuth2 authorisation server.

The mobile app sends residents to `/o/authorize/` (Authorization Code + PKCE S256); a resident
who is not signed in logs in at `/accounts/login/` (CSRF, django-axes lockout, per-IP rate
limit), then confirms the scopes on a consent screen listing them in English and Russian.
`/o/token/` is rate limited per client IP: over the limit it answers 429 before any database work.

With the shared cache (Redis) down, the token endpoint goes on uncounted (every grant it accepts
needs an unguessable secret - a PKCE verifier, a refresh token, a client secret with mTLS - and
refusing it would stop the partners' barrier decisions and sign every app out at its next
refresh); the login form, which takes guessable passwords, answers 503 instead.
"""

import base64
import binascii

from django.conf import settings
from django.contrib.auth.views import LoginView
from django.utils.decorators import method_decorator
from django.utils.translation import gettext
from django.views.decorators.csrf import csrf_exempt
from oauth2_provider import views as oauth_views

from core.api.serializers import input_errors
from core.auth.oauth_scopes import ALL_SCOPES
from core.http.client_ip import client_ip
from core.http.problems import problem_response
from core.ratelimit import Limit, attempt


def _limited(request, name: str, rate: str, *, fail_open: bool):
    """429 once the client address is over `rate`, before any database work. The response's
    `repeated_refusal` says an earlier request of the window was refused already: a flood, whose
    further refusals test no credential and need no audit event each. Shared cache down: see
    core.ratelimit (`fail_open`)."""
    result = attempt(f"{name}:{client_ip(request)}", Limit.parse(rate), path=name, fail_open=fail_open)
    if result.retry_after_s is None:
        return None
    response = problem_response(
        429, f"Too many {name} requests; try again in {result.retry_after_s} s.", request=request,
        headers={"Retry-After": str(result.retry_after_s)},
    )
    response.repeated_refusal = result.repeated_refusal
    return response


class TextInputRefused:
    """The input rule of every API (core.api.serializers.input_errors) on the OAuth2 endpoints:
    a parameter - or Basic credentials - with control characters is 400 `invalid_request`
    (RFC 6749's error, inside a problem document) before django-oauth-toolkit looks anything up -
    client authentication and login redirects included. A subclass of a csrf_exempt view says so
    again: as_view() reads the attribute off this dispatch."""

    def dispatch(self, request, *args, **kwargs):
        return self._refused(request) or super().dispatch(request, *args, **kwargs)

    @staticmethod
    def _refused(request):
        params = {**dict(request.GET.lists()), **dict(request.POST.lists())}
        authorization = request.headers.get("Authorization", "")
        if authorization[:6].lower() == "basic ":
            try:
                params["authorization"] = base64.b64decode(authorization[6:], validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                params["authorization"] = "\x00"  # undecodable: refused like a control character
        errors = input_errors(params)
        if not errors:
            return None
        return problem_response(
            400, gettext("Control characters are not allowed in OAuth2 parameters."), request=request,
            errors=[{"field": field, "code": "forbidden_character", "detail": str(detail[0])}
                    for field, detail in errors.items()],
            error="invalid_request",
        )


class ResidentLoginView(LoginView):
    template_name = "registration/resident_login.html"
    redirect_authenticated_user = False

    def post(self, request, *args, **kwargs):
        limited = _limited(request, "login", settings.LOGIN_RATE_PER_IP, fail_open=False)
        return limited or super().post(request, *args, **kwargs)


class ResidentAuthorizationView(TextInputRefused, oauth_views.AuthorizationView):
    login_url = "resident-login"
    template_name = "oauth2_provider/authorize.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["scope_texts"] = [ALL_SCOPES[scope] for scope in context.get("scopes", []) if scope in ALL_SCOPES]
        return context


@method_decorator(csrf_exempt, name="dispatch")
class RateLimitedTokenView(TextInputRefused, oauth_views.TokenView):
    def post(self, request, *args, **kwargs):
        limited = _limited(request, "token", settings.TOKEN_RATE_PER_IP, fail_open=True)
        return limited or super().post(request, *args, **kwargs)


@method_decorator(csrf_exempt, name="dispatch")
class RevokeTokenView(TextInputRefused, oauth_views.RevokeTokenView):
    pass


@method_decorator(csrf_exempt, name="dispatch")
class IntrospectTokenView(TextInputRefused, oauth_views.IntrospectTokenView):
    pass
