"""The resident-facing side of the OAuth2 authorisation server.

The mobile app sends residents to `/o/authorize/` (Authorization Code + PKCE S256); a resident
who is not signed in logs in at `/accounts/login/` (CSRF, django-axes lockout, per-IP rate
limit), then confirms the scopes on a consent screen listing them in English and Russian.
`/o/token/` is rate limited per client IP.

With the shared cache (Redis) down, the token endpoint goes on uncounted (every grant it accepts
needs an unguessable secret - a PKCE verifier, a refresh token, a client secret with mTLS - and
refusing it would stop the partners' barrier decisions and sign every app out at its next
refresh); the login form, which takes guessable passwords, answers 503 instead.
"""

from django.conf import settings
from django.contrib.auth.views import LoginView
from oauth2_provider import views as oauth_views

from core.auth.oauth_scopes import ALL_SCOPES
from core.http.client_ip import client_ip
from core.http.problems import problem_response
from core.ratelimit import Limit, hit


def _limited(request, name: str, rate: str, *, fail_open: bool):
    retry_after = hit(f"{name}:{client_ip(request)}", Limit.parse(rate), path=name, fail_open=fail_open)
    if retry_after is None:
        return None
    return problem_response(
        429, f"Too many {name} requests; try again in {retry_after} s.", request=request,
        headers={"Retry-After": str(retry_after)},
    )


class ResidentLoginView(LoginView):
    template_name = "registration/resident_login.html"
    redirect_authenticated_user = False

    def post(self, request, *args, **kwargs):
        limited = _limited(request, "login", settings.LOGIN_RATE_PER_IP, fail_open=False)
        return limited or super().post(request, *args, **kwargs)


class ResidentAuthorizationView(oauth_views.AuthorizationView):
    login_url = "resident-login"
    template_name = "oauth2_provider/authorize.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["scope_texts"] = [ALL_SCOPES[scope] for scope in context.get("scopes", []) if scope in ALL_SCOPES]
        return context


class RateLimitedTokenView(oauth_views.TokenView):
    def post(self, request, *args, **kwargs):
        limited = _limited(request, "token", settings.TOKEN_RATE_PER_IP, fail_open=True)
        return limited or super().post(request, *args, **kwargs)
