"""Bearer tokens of the resident API, with a budget of unknown tokens per client address.

django-oauth-toolkit looks every bearer token up in the database; one that matches nothing
(a guess, a flood of garbage, a token long expired) costs that lookup and earns a 401. Past
API_BAD_TOKENS_PER_IP such tokens from one client address in the window, the address gets 429
with Retry-After *before* the lookup - a flood that reaches the service does no database work.
The budget counts only failures, so an app whose token expired (one 401, then a refresh) never
gets near it; while an address is over it, every bearer request from it waits, a valid token's
too (the lookup that would tell them apart is the cost being refused). With the shared cache
down the budget is not counted (fail open: the tokens are still looked up and checked).
"""

from django.conf import settings
from oauth2_provider.contrib.rest_framework import OAuth2Authentication
from rest_framework.exceptions import Throttled

from core.http.client_ip import client_ip
from core.ratelimit import Limit, exceeded, hit


class TooManyBadTokens(Throttled):
    problem_code = "rate-limited"


class BudgetedOAuth2Authentication(OAuth2Authentication):
    def authenticate(self, request):
        if not request.META.get("HTTP_AUTHORIZATION", "").startswith("Bearer "):
            return super().authenticate(request)  # no token: nothing to look up
        key = f"api:bad-token:{client_ip(request)}"
        limit = Limit.parse(settings.API_BAD_TOKENS_PER_IP)
        wait = exceeded(key, limit, path="bearer_budget")
        if wait is not None:
            raise TooManyBadTokens(wait=wait)
        authenticated = super().authenticate(request)
        if authenticated is None:
            hit(key, limit, path="bearer_budget", fail_open=True)
        return authenticated
