"""The access app's resident API helpers, re-exported for its views.

The base every resident API view shares - scopes per method (denied by default), the per-user
rate limit, the resident behind the token and the refusal of suspended residents - is the
kernel's (core/api/resident.py), so that the consent app's endpoints stand behind the same one;
the documented problem responses and paginated schemas are core/api/schema.py.
"""

from core.api.resident import ResidentApi, rate_limit
from core.api.schema import paginated, problems

__all__ = ["ResidentApi", "paginated", "problems", "rate_limit"]
