"""The audit of sign-in: logins, failures, lockouts, OAuth2 tokens issued, refreshed, refused
and revoked, each an `audit` event with pseudonymous refs, the client address, the method
(`reason`) and, for provider logins, the provider's `acr`/`amr` (`object_ref`).

Failures can come in floods (password guessing, a broken client retrying); past
IDENTITY_AUDIT_FLOOD_PER_MIN events per (action, outcome, reason, client address, minute) they
are counted in `SignInFlood` instead, and `signin_floods_flush` (every minute) writes one summary
event per finished minute (`object_type` "flood", `object_ref` "count:N").
"""

import re

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from audit.actions import Action, ActorKind, Outcome
from audit.services import record
from core.cache.shared import count as shared_count
from core.http.client_ip import client_ip
from core.security.identifiers import pseudonymous_ref, user_ref
from identity.models import SignInFlood

# Set on the request by the sign-in views that know more than Django's backends tell:
# {"method": "oidc", "acr": "...", "amr": [...]}.
SIGNIN_DETAILS_ATTR = "_identity_signin"

_BACKEND_METHODS = {
    "identity.directory.DirectoryBackend": "ldap",
}
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def code(value: str, *, max_length: int = 40) -> str:
    """A free-ish string (an OAuth error, an acr value) as an audit code [a-z0-9_.]."""
    return re.sub(r"[^a-z0-9_.]+", "_", (value or "").lower())[:max_length].strip("_") or "unknown"


def login_ref(username: str) -> str:
    """Pseudonymous ref of a login name as typed (correlates attempts on one account)."""
    return pseudonymous_ref("login", (username or "").strip().casefold())


def acr_ref(acr: str | None, amr) -> str:
    """`acr:<acr>:amr:<a.b>` within the audit ref alphabet and length."""
    acr_part = _UNSAFE.sub("_", str(acr or "-"))[:24]
    amr_part = ".".join(_UNSAFE.sub("_", str(m))[:12] for m in (amr or [])[:4]) or "-"
    return f"acr:{acr_part}:amr:{amr_part}"[:64]


def client_address(request) -> str:
    return client_ip(request) if request is not None else ""


def _company_id(user):
    resident = getattr(user, "resident", None) if user is not None else None
    return getattr(resident, "company_id", None)


def _actor_kind(user) -> ActorKind:
    return ActorKind.STAFF if user.is_staff else ActorKind.RESIDENT


def login_succeeded(*, request, user) -> None:
    details = getattr(request, SIGNIN_DETAILS_ATTR, None) or {}
    method = details.get("method") or _BACKEND_METHODS.get(getattr(user, "backend", ""), "password")
    if getattr(user, "otp_device", None) is not None and not method.endswith(".otp"):
        method += ".otp"
    record(
        action=Action.AUTH_LOGIN,
        outcome=Outcome.SUCCESS,
        actor_kind=_actor_kind(user),
        actor_ref=user_ref(user),
        object_type="login",
        object_ref=acr_ref(details.get("acr"), details.get("amr")) if details else "",
        company_id=_company_id(user),
        reason=code(method),
        source_ip=client_address(request),
    )


def login_failed(*, request, credentials: dict) -> None:
    details = getattr(request, SIGNIN_DETAILS_ATTR, None) or {}
    record_failure(
        action=Action.AUTH_LOGIN,
        outcome=Outcome.FAILURE,
        reason=code(details.get("method") or "password"),
        object_type="login",
        object_ref=login_ref(credentials.get("username", "")),
        request=request,
    )


def login_refused(*, request, method: str, cause: str, acr=None, amr=None, user=None) -> None:
    """A sign-in the credentials allowed but a rule refused (unlinked identity, no directory role)."""
    record_failure(
        action=Action.AUTH_LOGIN,
        outcome=Outcome.DENIED,
        reason=code(f"{method}.{cause}"),
        object_type="login",
        object_ref=acr_ref(acr, amr) if acr or amr else (user_ref(user) if user is not None else ""),
        request=request,
    )


def login_locked(*, request, username: str, ip_address: str | None) -> None:
    record_failure(
        action=Action.SECURITY_LOGIN_LOCKED,
        outcome=Outcome.DENIED,
        reason="axes",
        object_type="login",
        object_ref=login_ref(username),
        request=request,
        source_ip=ip_address if request is None else None,
    )


def _token_actor(token) -> dict:
    if token.user_id is not None:
        return {"actor_kind": _actor_kind(token.user), "actor_ref": user_ref(token.user),
                "company_id": _company_id(token.user)}
    return {"actor_kind": ActorKind.SYSTEM, "actor_ref": f"client:{_UNSAFE.sub('_', token.application.client_id)}"[:64]}


def token_issued(*, request, token) -> None:
    grant_type = request.POST.get("grant_type", "") if request is not None else ""
    record(
        action=Action.AUTH_TOKEN_REFRESH if grant_type == "refresh_token" else Action.AUTH_TOKEN_ISSUE,
        outcome=Outcome.SUCCESS,
        object_type="oauth_application",
        object_ref=f"oauth_application:{token.application_id}",
        reason=code(grant_type or "unknown"),
        source_ip=client_address(request),
        **_token_actor(token),
    )


def token_refused(*, request, status: int, error: str) -> None:
    record_failure(
        action=Action.AUTH_TOKEN_REFUSED,
        outcome=Outcome.DENIED,
        reason=code(error),
        object_type="oauth_token_request",
        request=request,
        http_status=status,
    )


def tokens_revoked(*, user, count: int, reason: str, actor=None, request=None) -> None:
    record(
        action=Action.AUTH_TOKEN_REVOKE,
        outcome=Outcome.SUCCESS,
        actor_kind=(_actor_kind(actor) if actor is not None else ActorKind.SYSTEM),
        actor_ref=user_ref(actor) if actor is not None else "",
        object_type="user",
        object_ref=user_ref(user),
        company_id=_company_id(user),
        reason=code(f"{reason}.{min(count, 999)}"),
        source_ip=client_address(request),
    )


# --- floods ---------------------------------------------------------------------------------


def record_failure(*, action, outcome, reason: str, request=None, source_ip: str | None = None, **fields) -> None:
    """Record one failure event, or count it once its kind floods (see the module docstring)."""
    source_ip = source_ip if source_ip is not None else client_address(request)
    minute = timezone.now().replace(second=0, microsecond=0)
    key = f"identity:signin:{action}:{outcome}:{reason}:{source_ip}:{int(minute.timestamp())}"
    if shared_count(key, timeout_s=120) <= settings.IDENTITY_AUDIT_FLOOD_PER_MIN:
        record(action=action, outcome=outcome, reason=reason, source_ip=source_ip, **fields)
        return
    match = {"action": str(action), "outcome": str(outcome), "reason": reason, "source_ip": source_ip or "",
             "minute": minute}
    if SignInFlood.objects.filter(**match).update(suppressed=F("suppressed") + 1):
        return
    try:
        with transaction.atomic():
            SignInFlood.objects.create(**match, suppressed=1)
    except IntegrityError:  # another process created it first
        SignInFlood.objects.filter(**match).update(suppressed=F("suppressed") + 1)


def signin_floods_flush(*, now=None) -> int:
    """Write one summary audit event per counted flood of a finished minute, then drop the
    counter. Returns the number of summaries written."""
    current_minute = (now or timezone.now()).replace(second=0, microsecond=0)
    written = 0
    for pk in SignInFlood.objects.filter(minute__lt=current_minute).values_list("pk", flat=True):
        with transaction.atomic():
            flood = SignInFlood.objects.select_for_update().filter(pk=pk).first()
            if flood is None:
                continue
            record(
                action=flood.action,
                outcome=flood.outcome,
                reason=flood.reason,
                source_ip=flood.source_ip,
                object_type="flood",
                object_ref=f"count:{flood.suppressed}",
                request_id="",
            )
            flood.delete()
            written += 1
    return written
