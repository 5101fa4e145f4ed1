"""Partner API routes of the access app, mounted under /partner/v1/ by smarthome.urls.

The barrier's question, in four files: this URL -> the view (access/api/partner_decisions.py) ->
the decision (access/services/decisions.py: rate limit, verdict, audit record) -> the rules
(access/policy.py).
"""

from django.urls import path

from access.api.partner_decisions import AccessDecisionApi

urlpatterns = [
    path("access-decisions", AccessDecisionApi.as_view(), name="access-decisions"),
]
