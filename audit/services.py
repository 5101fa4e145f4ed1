"""Writes of the audit app. `record` is the only way any app writes an audit event.

Sealing lives in `audit.sealing`, verification in `audit.verification`, reconciliation in
`audit.reconcile`; retention pruning is `audit_prune` below.
"""

import datetime
import ipaddress
import logging
import math
import re
from collections.abc import Iterator
from decimal import Decimal

from django.db import DEFAULT_DB_ALIAS, connection, connections, transaction
from django.utils import timezone

from audit.actions import Action, ActorKind, Outcome
from audit.canonical import LATENCY_QUANTUM
from audit.export import export_stream
from audit.models import REASON_PATTERN, REF_PATTERN, AuditCheckpoint, AuditEvent, AuditLeaf, AuditPrune
from audit.sealing import audit_seal
from audit.selectors import checkpoint_latest, event_filter_for_user
from core.http.request_context import current_request_id

logger = logging.getLogger(__name__)

_REF = re.compile(REF_PATTERN)
_CODE = re.compile(REASON_PATTERN)
_MAX_LATENCY_MS = 10**9


_VOCABULARIES: dict = {}


def _choice(value, enum, name: str) -> str:
    values = _VOCABULARIES.get(enum)
    if values is None:
        values = _VOCABULARIES[enum] = frozenset(enum.values)
    if value not in values:
        raise ValueError(f"{name} must be one of the {enum.__name__} vocabulary")
    return str(value)


def _ref(value: str, name: str) -> str:
    if not isinstance(value, str) or not _REF.match(value):
        raise ValueError(f"{name} must match {REF_PATTERN} (a short machine ref, never free text)")
    return value


def _code(value: str, name: str) -> str:
    if not isinstance(value, str) or not _CODE.match(value):
        raise ValueError(f"{name} must be a code matching {REASON_PATTERN}")
    return value


def _id(value, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer id")
    return value


def _ip(value: str | None) -> str:
    if value in (None, ""):
        return ""
    try:
        return str(ipaddress.ip_address(value))
    except ValueError as exc:
        raise ValueError("source_ip must be an IP address") from exc


def _latency(value) -> Decimal | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise ValueError("latency_ms must be a number")
    number = float(value)
    if not math.isfinite(number) or number < 0 or number >= _MAX_LATENCY_MS:
        raise ValueError("latency_ms must be a finite number of milliseconds >= 0")
    return Decimal(repr(number)).quantize(LATENCY_QUANTUM)


def _status(value) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 100 <= value <= 599:
        raise ValueError("http_status must be an HTTP status code")
    return value


_INSERT_FIELDS = [field for field in AuditEvent._meta.concrete_fields if not field.primary_key]
_insert_sql: dict[str, str] = {}


def _insert(event: AuditEvent) -> AuditEvent:
    """INSERT one event without the ORM's per-call query compilation (every access decision
    writes one): the same columns and database conversions, one statement, id returned."""
    db = connections[DEFAULT_DB_ALIAS]  # once: each attribute of the `connection` proxy costs a lookup
    sql = _insert_sql.get(db.vendor)
    if sql is None:
        quote = db.ops.quote_name
        columns = ", ".join(quote(field.column) for field in _INSERT_FIELDS)
        placeholders = ", ".join(["%s"] * len(_INSERT_FIELDS))
        # identifiers come from the model's meta (quoted), values are parameters
        sql = _insert_sql[db.vendor] = (
            f"INSERT INTO {quote(AuditEvent._meta.db_table)} ({columns}) VALUES ({placeholders}) RETURNING id"  # noqa: S608
        )
    params = [field.get_db_prep_save(getattr(event, field.attname), db) for field in _INSERT_FIELDS]
    with db.cursor() as cursor:
        cursor.execute(sql, params)
        event.pk = cursor.fetchone()[0]
    event._state.adding = False
    event._state.db = db.alias
    return event


def record(
    *,
    action: Action,
    outcome: Outcome,
    actor_kind: ActorKind = ActorKind.SYSTEM,
    actor_ref: str = "",
    object_type: str = "",
    object_ref: str = "",
    partner_id: int | None = None,
    company_id: int | None = None,
    building_id: int | None = None,
    device_ref: str = "",
    reason: str = "",
    request_id: str | None = None,
    source_ip: str | None = None,
    latency_ms: float | None = None,
    http_status: int | None = None,
    subject_ref: str = "",
) -> AuditEvent:
    """Append one audit event, inside the caller's transaction (it rolls back with it).

    `subject_ref`: the pseudonymous ref of the person the event is about when they are not the
    actor (kept for their own history; not part of the sealed leaf).
    Checks: action/outcome/actor_kind from the fixed vocabulary; refs (`actor_ref`,
    `object_ref`, `device_ref`, `request_id`, `subject_ref`) match `[A-Za-z0-9:._-]{0,64}`; `reason` and
    `object_type` are codes `[a-z0-9_.]{0,64}`; ids are non-negative integers; `source_ip`
    parses as an IP; `latency_ms` is finite and >= 0 (kept to the microsecond);
    `http_status` is 100..599. Anything else raises ValueError, so free text (names, phones,
    plates) cannot get in. `request_id=None` takes the current request's id ("" outside one).
    """
    if request_id is None:
        request_id = current_request_id()
        if request_id == "-":
            request_id = ""
    return _insert(AuditEvent(
        occurred_at=timezone.now(),
        action=_choice(action, Action, "action"),
        outcome=_choice(outcome, Outcome, "outcome"),
        actor_kind=_choice(actor_kind, ActorKind, "actor_kind"),
        actor_ref=_ref(actor_ref, "actor_ref"),
        object_type=_code(object_type, "object_type"),
        object_ref=_ref(object_ref, "object_ref"),
        partner_id=_id(partner_id, "partner_id"),
        company_id=_id(company_id, "company_id"),
        building_id=_id(building_id, "building_id"),
        device_ref=_ref(device_ref, "device_ref"),
        reason=_code(reason, "reason"),
        request_id=_ref(request_id, "request_id"),
        source_ip=_ip(source_ip),
        latency_ms=_latency(latency_ms),
        http_status=_status(http_status),
        subject_ref=_ref(subject_ref, "subject_ref"),
    ))


def audit_export_start(
    *,
    user,
    actor_ref: str,
    fmt: str,
    since: datetime.datetime | None = None,
    until: datetime.datetime | None = None,
    building_id: int | None = None,
    partner_id: int | None = None,
    action: str | None = None,
    outcome: str | None = None,
    seal_first: bool = True,
) -> tuple[Iterator[bytes], str]:
    """Start an export for `user` (scoped to their management companies): -> (byte stream, file name).

    The caller has checked the compliance-officer role. Seals waiting events first (one
    batch, unless another sealer is busy) so the export is as fully proven as possible, then
    records `audit.exported` (object: the covering checkpoint size, reason: the format).
    """
    if seal_first:
        audit_seal()
    event_filter = event_filter_for_user(
        user, since=since, until=until, building_id=building_id, partner_id=partner_id,
        action=action, outcome=outcome,
    )
    checkpoint = checkpoint_latest()
    size = checkpoint.tree_size if checkpoint else 0
    record(
        action=Action.AUDIT_EXPORTED,
        outcome=Outcome.SUCCESS,
        actor_kind=ActorKind.STAFF,
        actor_ref=actor_ref,
        object_type="audit_checkpoint",
        object_ref=f"size:{size}",
        partner_id=partner_id,
        building_id=building_id,
        reason=f"format.{fmt}",
    )
    stamp = timezone.now().strftime("%Y%m%dT%H%M%SZ")
    return export_stream(event_filter=event_filter, fmt=fmt, checkpoint=checkpoint), f"audit-{stamp}.{fmt}"


def audit_prune(*, older_than: datetime.datetime, actor_ref: str = "") -> AuditPrune | None:
    """Delete events sealed under a checkpoint and older than `older_than`; keep their leaves.

    Only a prefix of the tree is pruned: positions below the first leaf that is either newer
    than `older_than` or not covered by the latest checkpoint. Leaves (with their hashes) and
    checkpoints stay, so `verify_audit` and every old export still verify; `verify_audit`
    accepts a missing event only below the recorded `AuditPrune.below_position`.
    Records `audit.pruned` with the number of events and the position boundary.
    On PostgreSQL the append-only trigger lets this one transaction through (`audit.allow_prune`).
    Returns None when nothing was old enough.
    """
    with transaction.atomic():
        latest = AuditCheckpoint.objects.order_by("-tree_size").first()
        if latest is None:
            return None
        first_young = (
            AuditLeaf.objects.filter(position__lt=latest.tree_size, event__occurred_at__gte=older_than)
            .order_by("position")
            .values_list("position", flat=True)
            .first()
        )
        below = latest.tree_size if first_young is None else first_young
        if below == 0:
            return None
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                cursor.execute("SET LOCAL audit.allow_prune = 'on'")
            cursor.execute(
                "DELETE FROM audit_event WHERE id IN (SELECT event_id FROM audit_leaf WHERE position < %s)",
                [below],
            )
            deleted = cursor.rowcount
        prune = AuditPrune.objects.create(below_position=below, cutoff=older_than, deleted=deleted)
        record(
            action=Action.AUDIT_PRUNED,
            outcome=Outcome.SUCCESS,
            actor_kind=ActorKind.STAFF if actor_ref else ActorKind.SYSTEM,
            actor_ref=actor_ref,
            object_type="audit_prune",
            object_ref=f"below:{below}",
            reason="retention",
        )
    logger.info("audit log pruned", extra={"below_position": below, "deleted": deleted})
    return prune
