"""The bytes an audit event contributes to the Merkle tree — defined once, used everywhere.

An event is a fixed tuple of strings (FIELDS order, absent values as ""). Its leaf bytes are
the compact JSON array `["v2", <those strings>]` (ASCII only); leaf hash = SHA-256(0x00 || bytes).
The sealer, `verify_audit`, the export (its rows carry exactly these strings) and the
standalone `scripts/verify_audit_export.py` all go through this definition.

Every string is drawn from `[A-Za-z0-9:._-]`, digits or the fixed time format (the CHECK
constraints of `audit_event` guarantee it), so none needs JSON escaping. That is what lets
PostgreSQL build the very same bytes by plain concatenation (`sql_leaf_text`, `sql_jsonl_row`):
the export streams rows with COPY, and the leaf hash of every row is computed by the database
once, when the row is inserted (the stored generated column `leaf_v2`, migration 0005); tests
check both paths give identical bytes.

The single log before per-company logs (`audit.legacy`) hashed `["v1", <FIELDS without
origin_request_id>]`; `legacy_leaf_hash` keeps that rule for verifying it.
"""

import datetime
import json
from decimal import Decimal

from audit.merkle import leaf_hash

VERSION = "v2"
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
    "origin_request_id",
)
LEGACY_VERSION = "v1"
LEGACY_FIELDS = FIELDS[:-1]
TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
LATENCY_QUANTUM = Decimal("0.001")
_INTEGER_FIELDS = ("id", "partner_id", "company_id", "building_id", "latency_ms", "http_status")
COMPANY_INDEX = FIELDS.index("company_id")

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


def legacy_leaf_hash(strings) -> bytes:
    """The v1 leaf of the single log (`strings` in LEGACY_FIELDS order)."""
    return leaf_hash(_dumps([LEGACY_VERSION, *strings]).encode("ascii"))


def log_name(company_id) -> str:
    """The log an event belongs to: its management company's, or the platform log."""
    return "platform" if company_id in (None, "") else f"company:{company_id}"


# --- the same strings in PostgreSQL ---------------------------------------------------------
# With `generated=True` only IMMUTABLE functions are used (textcat, the integer and numeric
# output functions, decode, sha256, and audit_utc_text: to_char with a locale-free pattern,
# declared immutable in migration 0004), as a stored generated column needs; queries call
# to_char directly (a wrapped call per row would cost more than the rest of the row).
# decode(text, 'escape') gives the text's bytes: the strings never hold a backslash.

_TIME_SQL = """to_char({} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')"""


def _sql_column(name: str, alias: str, generated: bool = False) -> str:
    column = f"{alias}.{name}" if alias else name
    if name == "occurred_at":
        return f"audit_utc_text({column})" if generated else _TIME_SQL.format(column)
    if name in _INTEGER_FIELDS:
        return f"coalesce({column}::text, '')"
    return f"{column}::text"


def sql_column_exprs(alias: str = "e", *, generated: bool = False) -> list[str]:
    """PostgreSQL expressions giving the canonical strings of table alias `alias`, FIELDS order."""
    return [_sql_column(name, alias, generated) for name in FIELDS]


def sql_columns(alias: str = "e") -> str:
    return ", ".join(sql_column_exprs(alias))


def sql_leaf_text(alias: str = "e", *, generated: bool = False) -> str:
    """The leaf bytes (as text) of each row: `["v2","<id>",...]`."""
    columns = """ || '","' || """.join(sql_column_exprs(alias, generated=generated))
    return f"""('["{VERSION}","' || {columns} || '"]')"""


def sql_leaf_hash(alias: str = "e", *, generated: bool = False) -> str:
    return f"sha256('\\x00'::bytea || decode({sql_leaf_text(alias, generated=generated)}, 'escape'))"


def sql_jsonl_row(alias: str = "e") -> str:
    """One export row as a JSON object `{"id":"...",...}` (keys in FIELDS order). One concat() call
    (NULL as ""), not a chain of ||: each || copies the growing row again."""
    parts = []
    for index, (name, expr) in enumerate(zip(FIELDS, sql_column_exprs(alias), strict=True)):
        parts += [("'{" if index == 0 else """'",""") + f""""{name}":"'""", expr]
    return f"""concat({", ".join(parts)}, '"}}')"""


def jsonl_row(strings) -> str:
    return _dumps(dict(zip(FIELDS, strings, strict=True)))
