"""Writes of the audit app. `record` is the only way any app writes an audit event.

Sealing lives in `audit.sealing`, verification in `audit.verification`, reconciliation in
`audit.reconcile`, refused partner traffic in `audit.refusals`; retention pruning is
`audit_prune` below.
"""

import datetime
import ipaddress
import logging
import math
import re
from collections.abc import Iterator
from decimal import Decimal

from django.db import DEFAULT_DB_ALIAS, connection, connections, transaction
from django.db.models import Q
from django.utils import timezone

from audit.actions import Action, ActorKind, Outcome
from audit.canonical import LATENCY_QUANTUM
from audit.export import export_plan, export_stream
from audit.membership import membership
from audit.models import REASON_PATTERN, REF_PATTERN, AuditCheckpoint, AuditEvent, AuditLog, AuditPrune
from audit.sealing import audit_seal
from audit.selectors import event_filter_for_user, prune_boundary
from audit.verification import Report, verify_log
from core.cache.versioned import unchanged_write_sql, write_if_unchanged
from core.copy_insert import copy_values
from core.http.request_context import current_request_id
from core.prepared_statements import prepared_cursor

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
_INSERT_NAMES = [field.attname for field in _INSERT_FIELDS]
_insert_sql: dict = {}  # per database vendor (and kind of insert)


def _insert_statement(db) -> str:
    sql = _insert_sql.get(db.vendor)
    if sql is None:
        quote = db.ops.quote_name
        columns = ", ".join(quote(field.column) for field in _INSERT_FIELDS)
        placeholders = ", ".join(["%s"] * len(_INSERT_FIELDS))
        # identifiers come from the model's meta (quoted), values are parameters
        sql = _insert_sql[db.vendor] = (
            f"INSERT INTO {quote(AuditEvent._meta.db_table)} ({columns}) VALUES ({placeholders}) RETURNING id"  # noqa: S608
        )
    return sql


def _unchanged_insert_statement(db) -> str:
    """The INSERT of `record_if_unchanged`: the values typed, as SELECT gives them no column to infer from."""
    key = ("unchanged", db.vendor)
    sql = _insert_sql.get(key)
    if sql is None:
        head = _insert_statement(db).partition(" VALUES (")[0]
        values = ", ".join(f"%s::{field.db_type(db)}" for field in _INSERT_FIELDS)
        sql = _insert_sql[key] = unchanged_write_sql(f"{head} SELECT {values}")
    return sql


def _params(event: AuditEvent, db) -> list:
    return [field.get_db_prep_save(getattr(event, field.attname), db) for field in _INSERT_FIELDS]


def _saved(event: AuditEvent, pk: int, db) -> AuditEvent:
    event.pk = pk
    event._state.adding = False
    event._state.db = db.alias
    return event


def _insert(event: AuditEvent) -> AuditEvent:
    """INSERT one event without the ORM's per-call query compilation (every access decision
    writes one): the same columns and database conversions, one statement prepared on the
    server once per connection (core.prepared_statements), id returned."""
    db = connections[DEFAULT_DB_ALIAS]  # once: each attribute of the `connection` proxy costs a lookup
    with prepared_cursor(db) as cursor:
        cursor.execute(_insert_statement(db), _params(event, db))
        return _saved(event, cursor.fetchone()[0], db)


def record(**fields) -> AuditEvent:
    """Append one audit event, inside the caller's transaction (it rolls back with it). The
    keyword arguments are `_event`'s: `action`, `outcome`, `actor_kind`, `actor_ref`,
    `object_type`, `object_ref`, `partner_id`, `company_id`, `building_id`, `device_ref`,
    `reason`, `request_id`, `source_ip`, `latency_ms`, `http_status`, `subject_ref`,
    `origin_request_id`.

    `subject_ref`: the pseudonymous ref of the person the event is about when they are not the
    actor (kept for their own history; not part of the sealed leaf).
    Checks: action/outcome/actor_kind from the fixed vocabulary; refs (`actor_ref`, `object_ref`,
    `device_ref`, `request_id`, `origin_request_id`, `subject_ref`) match `[A-Za-z0-9:._-]{0,64}`; `reason` and
    `object_type` are codes `[a-z0-9_.]{0,64}`; ids are non-negative integers; `source_ip`
    parses as an IP; `latency_ms` is finite and >= 0 (kept to the microsecond);
    `http_status` is 100..599. Anything else raises ValueError, so free text (names, phones,
    plates) cannot get in. `request_id=None` takes the current request's id ("" outside one).
    `origin_request_id` names the request that caused this event when `request_id` is another
    one (a partner call: the partner's request id, caused by a resident's request).
    """
    return _insert(_event(**fields))


def record_if_unchanged(**fields) -> AuditEvent | None:
    """`record`, for a request running on an assumed batch of the change log
    (core.cache.versioned.assume_unchanged): written only if no change has committed since that
    batch - the check and the INSERT are one statement (`write_if_unchanged`). The event, or None
    when something changed (nothing written: refresh the facts and decide again). Same checks and
    arguments as `record`."""
    event = _event(**fields)
    db = connections[DEFAULT_DB_ALIAS]
    pk = write_if_unchanged(_unchanged_insert_statement(db), _params(event, db))
    return None if pk is None else _saved(event, pk, db)


def record_many(events: list[dict]) -> int:
    """Append many audit events (each a dict of `record`'s keyword arguments), inside the caller's
    transaction, in one COPY instead of a statement each: the same checks (any breach raises
    ValueError before anything is written). For bulk writes (master-data imports). Returns how
    many were written."""
    rows = [_event_values(**event) for event in events]  # every one checked before anything is written
    return copy_values(AuditEvent, fields=_INSERT_NAMES, rows=([row[name] for name in _INSERT_NAMES] for row in rows))


def _event_values(
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
    origin_request_id: str = "",
) -> dict:
    """The checked field values of `record`'s event (see its docstring for the checks)."""
    if request_id is None:
        request_id = current_request_id()
        if request_id == "-":
            request_id = ""
    return {
        "occurred_at": timezone.now(),
        "action": _choice(action, Action, "action"),
        "outcome": _choice(outcome, Outcome, "outcome"),
        "actor_kind": _choice(actor_kind, ActorKind, "actor_kind"),
        "actor_ref": _ref(actor_ref, "actor_ref"),
        "object_type": _code(object_type, "object_type"),
        "object_ref": _ref(object_ref, "object_ref"),
        "partner_id": _id(partner_id, "partner_id"),
        "company_id": _id(company_id, "company_id"),
        "building_id": _id(building_id, "building_id"),
        "device_ref": _ref(device_ref, "device_ref"),
        "reason": _code(reason, "reason"),
        "request_id": _ref(request_id, "request_id"),
        "source_ip": _ip(source_ip),
        "latency_ms": _latency(latency_ms),
        "http_status": _status(http_status),
        "subject_ref": _ref(subject_ref, "subject_ref"),
        "origin_request_id": _ref(origin_request_id, "origin_request_id"),
    }


def _event(**fields) -> AuditEvent:
    """The checked, unsaved event of `record`."""
    return AuditEvent(**_event_values(**fields))


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

    The caller has checked the right to export (the API: the compliance-officer role; the admin:
    the permission audit.export_auditevent). Seals waiting events first (one
    batch, unless another sealer is busy) so the export is as fully proven as possible, then
    records `audit.exported` (object: the last seal it covers, reason: the format).
    """
    if seal_first:
        audit_seal()
    event_filter = event_filter_for_user(
        user, since=since, until=until, building_id=building_id, partner_id=partner_id,
        action=action, outcome=outcome,
    )
    plan = export_plan(event_filter)
    record(
        action=Action.AUDIT_EXPORTED,
        outcome=Outcome.SUCCESS,
        actor_kind=ActorKind.STAFF,
        actor_ref=actor_ref,
        object_type="audit_seal",
        object_ref=f"seal:{plan.through_seal}",
        partner_id=partner_id,
        building_id=building_id,
        reason=f"format.{fmt}",
    )
    stamp = timezone.now().strftime("%Y%m%dT%H%M%SZ")
    return export_stream(plan=plan, fmt=fmt), f"audit-{stamp}.{fmt}"


def audit_prune(*, older_than: datetime.datetime, actor_ref: str = "") -> list[AuditPrune]:
    """Delete, log by log, the events of whole checkpoints older than `older_than`; keep every
    checkpoint with its leaf hashes.

    In each log only a prefix goes: the events of its checkpoints up to the last one signed
    before `older_than` (so the boundary is always a checkpoint size and every export range
    starts at a signed checkpoint). `verify_audit` then accepts missing events below the
    recorded `AuditPrune.below_position` and nowhere else; old exports still verify. Records
    `audit.pruned` per log with the number of events and the boundary. On PostgreSQL the
    append-only trigger lets this one transaction through (`audit.allow_prune`). Returns the
    prunes made (none when nothing was old enough).
    """
    made = []
    with transaction.atomic():
        for log in AuditLog.objects.order_by("id"):
            cut = (AuditCheckpoint.objects.filter(log=log, signed_at__lt=older_than).order_by("-tree_size")
                   .only("tree_size", "seal_id").first())
            if cut is None or cut.tree_size <= prune_boundary(log.pk):
                continue
            plan = membership(after_seal=0, through_seal=cut.seal_id)
            company = Q(company_id__isnull=True) if log.company_id is None else Q(company_id=log.company_id)
            ids = []
            for segment in plan.segments:
                ids.extend(AuditEvent.objects.filter(plan.q(segment) & company).values_list("id", flat=True))
            deleted = _delete_events(ids)
            made.append(AuditPrune.objects.create(log=log, below_position=cut.tree_size, cutoff=older_than,
                                                  deleted=deleted))
            record(
                action=Action.AUDIT_PRUNED,
                outcome=Outcome.SUCCESS,
                actor_kind=ActorKind.STAFF if actor_ref else ActorKind.SYSTEM,
                actor_ref=actor_ref,
                company_id=log.company_id,
                object_type="audit_prune",
                object_ref=f"below:{cut.tree_size}",
                reason="retention",
            )
            logger.info("audit log pruned", extra={"log": log.name, "below_position": cut.tree_size,
                                                   "deleted": deleted})
    return made


def _delete_events(ids: list[int]) -> int:
    deleted = 0
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET LOCAL audit.allow_prune = 'on'")
        for start in range(0, len(ids), 5000):
            chunk = ids[start:start + 5000]
            cursor.execute(f"DELETE FROM audit_event WHERE id IN ({', '.join(['%s'] * len(chunk))})", chunk)  # noqa: S608
            deleted += cursor.rowcount
    return deleted


def audit_verify(*, progress=None) -> Report:
    """Run `verify_log` and record `audit.verified` (success with the verified seal, or failure)."""
    report = verify_log(progress=progress)
    record(
        action=Action.AUDIT_VERIFIED,
        outcome=Outcome.SUCCESS if report.ok else Outcome.FAILURE,
        object_type="audit_seal",
        object_ref=f"seal:{report.verified_seal}",
        reason="" if report.ok else "tamper_detected",
    )
    if not report.ok:
        logger.error("audit log verification failed", extra={"first_bad": report.first_bad})
    return report
