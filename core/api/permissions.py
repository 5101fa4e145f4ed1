"""DRF permissions shared by the APIs."""

from rest_framework import exceptions
from rest_framework.permissions import BasePermission


class MissingScope(exceptions.PermissionDenied):
    problem_code = "missing-scope"

    def __init__(self, scope: str):
        super().__init__(f"This operation needs the OAuth2 scope '{scope}'.")
        self.problem_extra = {"required_scope": scope}


def scope_required(*scopes: str) -> type[BasePermission]:
    """A permission class: the OAuth2 token must carry every one of `scopes` (403 names the first missing)."""

    class HasScopes(BasePermission):
        def has_permission(self, request, view):
            token = request.auth
            if token is None or not hasattr(token, "allow_scopes"):
                raise exceptions.NotAuthenticated()
            for scope in scopes:
                if not token.allow_scopes([scope]):
                    raise MissingScope(scope)
            return True

    HasScopes.__name__ = "HasScopes_" + "_".join(s.replace(":", "_") for s in scopes)
    HasScopes.required_scopes = scopes
    return HasScopes
