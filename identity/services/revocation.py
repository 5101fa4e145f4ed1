"""Revoking a user's OAuth2 tokens and browser sessions (admin action, back-channel logout)."""

from django.db import transaction
from oauth2_provider.models import get_access_token_model, get_grant_model, get_refresh_token_model

from identity import signin_audit
from identity.sessions import sessions_cut_off


@transaction.atomic
def user_access_revoke(*, user, reason: str, actor=None, request=None) -> int:
    """Revoke every refresh and access token of `user` (the app must sign in again), drop pending
    authorisation codes, and end every browser session that exists now (identity.middleware).

    Records auth.token_revoke with `reason` ("admin", "backchannel_logout", ...) and the number of
    tokens. Returns that number.
    """
    access_tokens = get_access_token_model().objects.filter(user=user)
    refresh_tokens = list(get_refresh_token_model().objects.filter(user=user, revoked__isnull=True))
    revoked = len(refresh_tokens) + access_tokens.count()
    for refresh in refresh_tokens:
        refresh.revoke()  # and its access token
    for token in access_tokens:
        token.revoke()
    get_grant_model().objects.filter(user=user).delete()
    sessions_cut_off(user=user)
    signin_audit.tokens_revoked(user=user, count=revoked, reason=reason, actor=actor, request=request)
    return revoked
