"""The bytes an audit event contributes to the Merkle tree — defined once, used everywhere.

An event is a fixed tuple of strings (FIELDS order, absent values as ""). Its leaf bytes are
the compact JSON array `["v1", <those strings>]` (ASCII only); leaf hash = SHA-256(0x00 || bytes).
The sealer, `verify_audit`, the export (its rows carry exactly these strings) and the
standalone `scripts/verify_audit_export.py` all go through this definition.

On PostgreSQL the same strings are produced in SQL (`SQL_COLUMNS`) so the export can stream
with COPY; tests check both paths give identical bytes.
"""

import datetime
import json
from decimal import Decimal

from audit.merkle import leaf_hash

VERSION = "v1"
FIELDS = (
    "id",
    "occurred_at",
    "actor_kind",
    "actor_ref",
    "action",
    "outcome",
    "object_type",
    "object_ref",
    "partner_id",
    "company_id",
    "building_id",
    "device_ref",
    "reason",
    "request_id",
    "source_ip",
    "latency_ms",
    "http_status",
)
TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
LATENCY_QUANTUM = Decimal("0.001")

_dumps = json.JSONEncoder(ensure_ascii=True, separators=(",", ":")).encode


def format_time(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).strftime(TIME_FORMAT)


def strings_from_values(values: tuple) -> tuple[str, ...]:
    """Model values in FIELDS order -> the canonical strings."""
    out = []
    for name, value in zip(FIELDS, values, strict=True):
        if value is None:
            out.append("")
        elif name == "occurred_at":
            out.append(format_time(value))
        elif name == "latency_ms":
            out.append(str(Decimal(value).quantize(LATENCY_QUANTUM)))
        else:
            out.append(str(value))
    return tuple(out)


def leaf_bytes(strings) -> bytes:
    return _dumps([VERSION, *strings]).encode("ascii")


def event_leaf_hash(strings) -> bytes:
    return leaf_hash(leaf_bytes(strings))


def _sql_column(name: str, alias: str) -> str:
    column = f"{alias}.{name}"
    if name == "occurred_at":
        return f"""to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')"""
    if name in ("id", "partner_id", "company_id", "building_id", "latency_ms", "http_status"):
        return f"coalesce({column}::text, '')"
    return column


def sql_column_exprs(alias: str = "e") -> list[str]:
    """PostgreSQL expressions giving the canonical strings of table alias `alias`, FIELDS order."""
    return [_sql_column(name, alias) for name in FIELDS]


def sql_columns(alias: str = "e") -> str:
    return ", ".join(sql_column_exprs(alias))
