"""Browser sessions: when each began, and cutting off those that began before a revocation."""

import datetime
import time

from django.contrib.auth.signals import user_logged_in
from django.dispatch import receiver
from django.utils import timezone

from identity.models import SessionCutoff

LOGIN_AT_KEY = "identity.login_at"


@receiver(user_logged_in, dispatch_uid="identity.session_login_time")
def _remember_login_time(sender, request, user, **kwargs):
    if request is not None and hasattr(request, "session"):
        request.session[LOGIN_AT_KEY] = timezone.now().timestamp()


def session_is_cut_off(request) -> bool:
    cutoff = SessionCutoff.objects.filter(user_id=request.session["_auth_user_id"]).values_list(
        "not_before", flat=True
    ).first()
    if cutoff is None:
        return False
    started = request.session.get(LOGIN_AT_KEY)
    if started is None:
        return True
    return datetime.datetime.fromtimestamp(started, tz=datetime.UTC) < cutoff


def sessions_cut_off(*, user) -> None:
    """Every session of `user` that exists now ends at its next request."""
    SessionCutoff.objects.update_or_create(user=user, defaults={"not_before": timezone.now()})


def pending_step(session, key: str, ttl_s: int) -> dict | None:
    """The state a multi-step page left under `key` ({"at": time, ...}), or None once it is
    missing or older than `ttl_s` (then it is dropped)."""
    pending = session.get(key)
    if not pending or time.time() - pending.get("at", 0) > ttl_s:
        session.pop(key, None)
        return None
    return pending
