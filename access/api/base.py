"""The base of the access app's resident API views, and the schema helpers they use.

The base every resident API view shares - scopes per method (denied by default), the per-user
rate limit, the resident behind the token and the refusal of suspended residents - is the
kernel's (core/api/resident.py), so that the consent app's endpoints stand behind the same one.
Here it learns the access app's domain errors (access/errors.py), which become problem
documents through access/api/errors.py; the documented problem responses and paginated schemas
are core/api/schema.py.
"""

from access.api.errors import as_problem
from core.api.resident import ResidentApi as KernelResidentApi
from core.api.resident import rate_limit
from core.api.schema import paginated, problems

__all__ = ["ResidentApi", "paginated", "problems", "rate_limit"]


class ResidentApi(KernelResidentApi):
    def handle_exception(self, exc):
        return super().handle_exception(as_problem(exc))
