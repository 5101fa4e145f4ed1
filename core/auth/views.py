"""The resident-facing side of the OAuth2 authorisation server.

The mobile app sends residents to `/o/authorize/` (Authorization Code + PKCE S256); a resident
who is not signed in logs in at `/accounts/login/` (CSRF, django-axes lockout, per-IP rate
limit), then confirms the scopes on a consent screen listing them in English and Russian.
`/o/token/` is rate limited per client IP: over the limit it answers 429 before any database work.
"""

from django.conf import settings
from django.contrib.auth.views import LoginView
from oauth2_provider import views as oauth_views

from core.auth.oauth_scopes import ALL_SCOPES
from core.http.client_ip import client_ip
from core.http.problems import problem_response
from core.ratelimit import Limit, attempt


def _limited(request, name: str, rate: str):
    """429 once the client address is over `rate`, before any database work. The response's
    `repeated_refusal` says an earlier request of the window was refused already: a flood, whose
    further refusals test no credential and need no audit event each."""
    result = attempt(f"{name}:{client_ip(request)}", Limit.parse(rate))
    if result.retry_after_s is None:
        return None
    response = problem_response(
        429, f"Too many {name} requests; try again in {result.retry_after_s} s.", request=request,
        headers={"Retry-After": str(result.retry_after_s)},
    )
    response.repeated_refusal = result.repeated_refusal
    return response


class ResidentLoginView(LoginView):
    template_name = "registration/resident_login.html"
    redirect_authenticated_user = False

    def post(self, request, *args, **kwargs):
        return _limited(request, "login", settings.LOGIN_RATE_PER_IP) or super().post(request, *args, **kwargs)


class ResidentAuthorizationView(oauth_views.AuthorizationView):
    login_url = "resident-login"
    template_name = "oauth2_provider/authorize.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["scope_texts"] = [ALL_SCOPES[scope] for scope in context.get("scopes", []) if scope in ALL_SCOPES]
        return context


class RateLimitedTokenView(oauth_views.TokenView):
    def post(self, request, *args, **kwargs):
        return _limited(request, "token", settings.TOKEN_RATE_PER_IP) or super().post(request, *args, **kwargs)
