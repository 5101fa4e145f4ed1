"""Ends browser sessions that began before the user's `SessionCutoff` (revoked from the admin or
by the provider's back-channel logout): the next request of such a session is anonymous.

The login time is kept in the session when the user signs in (identity.sessions). The check is
one indexed query, only for requests that carry a signed-in session; API calls with bearer
tokens have no session and cost nothing.
"""

from django.contrib.auth import logout

from identity.sessions import session_is_cut_off


class SessionCutoffMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        session = getattr(request, "session", None)
        if session is not None and session.get("_auth_user_id") and session_is_cut_off(request):
            logout(request)
        return self.get_response(request)
