"""Compliance export: streamed CSV or JSON Lines, ending with the checkpoint and a multiproof.

File layout (both formats carry the same strings, see `audit.canonical`):
- CSV: a header row `position,id,occurred_at,...`; one row per event; a last row whose
  first cell is `#proof` and whose second cell is the trailer JSON document.
- JSONL: one object per event `{"position": "12", "id": "...", ...}`; a last line
  `{"format": ..., "checkpoint": {...}, "proof": {...}, ...}` (the trailer).
`missing_rows` lists positions whose event row vanished from the database outside retention
pruning (a deletion behind the service's back); verifiers reject a file that has any.
Sealed rows come first in position order, then rows not yet covered by the checkpoint
(`position` empty, "unsealed", in id order): they are exported but not proven.

The trailer's `proof.hashes` is an RFC 9162 multiproof: the hashes of the maximal subtrees
of the checkpoint's tree holding no exported row, left to right. With the rows' leaf
hashes it recomputes the signed root, so an altered, removed or reordered row — or a
forged checkpoint — fails `manage.py verify_audit_export` / `scripts/verify_audit_export.py`.

On PostgreSQL the rows stream straight out of `COPY (SELECT ...) TO STDOUT` (the canonical
strings are computed in SQL); elsewhere through a server-side ORM iterator. Memory stays
flat either way: rows are never collected, the proof walks a cursor.
"""

import csv
import io
import json
from collections.abc import Iterator

from django.db import connection
from django.db.models import Exists, OuterRef
from django.utils import timezone

from audit.canonical import FIELDS, VERSION, format_time, sql_column_exprs, strings_from_values
from audit.merkle import PositionRuns, multiproof
from audit.models import AuditCheckpoint, AuditEvent, AuditLeaf
from audit.selectors import EventFilter, prune_boundary

FORMAT = "smarthome-audit-export/v1"
COLUMNS = ("position", *FIELDS)
CSV_TRAILER_MARK = "#proof"
PUBLIC_KEY_PATH = "/api/v1/audit/public-key"
LEAF_RULE = 'SHA-256(0x00 || compact ASCII JSON ["v1", id, occurred_at, ..., http_status] as strings)'
_CHUNK = 2000


class _Rows:
    """Counts rows and, on the ORM path, collects sealed positions as runs."""

    def __init__(self):
        self.sealed = 0
        self.unsealed = 0
        self.runs: list[list[int]] = []

    def add_position(self, position: int) -> None:
        if self.runs and self.runs[-1][1] == position:
            self.runs[-1][1] = position + 1
        else:
            self.runs.append([position, position + 1])


def _where(event_filter: EventFilter) -> tuple[str, list]:
    if event_filter.is_everything():
        return "", []
    sql, params = AuditEvent.objects.filter(event_filter.q()).values("id").query.sql_with_params()
    return f" AND e.id IN ({sql})", list(params)


def _copy(sql: str, params: list, rows: _Rows, kind: str) -> Iterator[bytes]:
    with connection.cursor() as cursor, cursor.copy(sql, params) as copy:
        for block in copy:
            block = bytes(block)
            setattr(rows, kind, getattr(rows, kind) + block.count(b"\n"))
            yield block


def _pg_select(fmt: str, position_expr: str) -> str:
    exprs = sql_column_exprs("e")
    if fmt == "csv":
        return f"{position_expr}, " + ", ".join(exprs)
    pairs = [f"'position', {position_expr}", *(f"'{name}', {expr}" for name, expr in zip(FIELDS, exprs, strict=True))]
    return f"json_build_object({', '.join(pairs)})::text"


# S608 noqa below: the SQL is built from constant column expressions (and a Django-compiled
# filter); every value travels as a parameter.
def _pg_rows(event_filter: EventFilter, fmt: str, size: int, rows: _Rows) -> Iterator[bytes]:
    where, params = _where(event_filter)
    options = "(FORMAT csv)" if fmt == "csv" else "(FORMAT text)"
    sealed = (
        f"COPY (SELECT {_pg_select(fmt, 'l.position::text')} FROM audit_leaf l "  # noqa: S608
        f"JOIN audit_event e ON e.id = l.event_id WHERE l.position < %s{where} ORDER BY l.position) "
        f"TO STDOUT {options}"
    )
    yield from _copy(sealed, [size, *params], rows, "sealed")
    no_position = "''"
    unsealed = (
        f"COPY (SELECT {_pg_select(fmt, no_position)} FROM audit_event e WHERE NOT EXISTS "  # noqa: S608
        f"(SELECT 1 FROM audit_leaf l WHERE l.event_id = e.id AND l.position < %s){where} ORDER BY e.id) "
        f"TO STDOUT {options}"
    )
    yield from _copy(unsealed, [size, *params], rows, "unsealed")


def _pg_member_runs(event_filter: EventFilter, size: int) -> PositionRuns:
    where, params = _where(event_filter)
    sql = (
        "SELECT min(p), max(p) + 1 FROM (SELECT l.position AS p, "  # noqa: S608
        "l.position - row_number() OVER (ORDER BY l.position) AS g FROM audit_leaf l "
        f"JOIN audit_event e ON e.id = l.event_id WHERE l.position < %s{where}) s GROUP BY g ORDER BY 1"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [size, *params])
        return PositionRuns(cursor.fetchall())


def _orm_rows(event_filter: EventFilter, fmt: str, size: int, rows: _Rows) -> Iterator[bytes]:
    q = event_filter.q()
    sealed = (
        AuditEvent.objects.filter(q, leaf__position__lt=size)
        .order_by("leaf__position")
        .values_list("leaf__position", *FIELDS)
    )
    unsealed = AuditEvent.objects.filter(q).exclude(leaf__position__lt=size).order_by("id").values_list(*FIELDS)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")

    def emit(position: str, values: tuple) -> None:
        strings = strings_from_values(values)
        if fmt == "csv":
            writer.writerow((position, *strings))
        else:
            buffer.write(json.dumps(dict(zip(COLUMNS, (position, *strings), strict=True))) + "\n")

    for count, row in enumerate(sealed.iterator(chunk_size=_CHUNK), 1):
        rows.add_position(row[0])
        rows.sealed += 1
        emit(str(row[0]), row[1:])
        if count % _CHUNK == 0:
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
    for count, values in enumerate(unsealed.iterator(chunk_size=_CHUNK), 1):
        rows.unsealed += 1
        emit("", values)
        if count % _CHUNK == 0:
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode()


def _other_leaves(event_filter: EventFilter, size: int, missing: list[int]) -> Iterator[bytes]:
    """Leaf hashes of every position below `size` that is not exported (incl. pruned ones).

    Positions whose event row is gone although they lie above the pruning boundary are
    appended to `missing`: the trailer lists them and verifiers reject the file.
    """
    boundary = prune_boundary()
    others = AuditLeaf.objects.filter(position__lt=size)
    matching = AuditEvent.objects.filter(event_filter.q()) if not event_filter.is_everything() else AuditEvent.objects
    others = others.exclude(event_id__in=matching.values("id")).annotate(
        has_event=Exists(AuditEvent.objects.filter(id=OuterRef("event_id")))
    )
    rows = others.order_by("position").values_list("position", "leaf_hash", "has_event")
    for position, leaf, has_event in rows.iterator(chunk_size=_CHUNK):
        if not has_event and position >= boundary:
            missing.append(position)
        yield bytes(leaf)


def _trailer(meta: dict, hashes: Iterator[bytes], missing_rows: list[int]) -> Iterator[str]:
    head = json.dumps(meta, separators=(",", ":"))
    yield head[:-1] + ',"proof":{"type":"rfc9162-multiproof","hashes":['
    first = True
    batch = []
    for node in hashes:
        batch.append(('"' if first else ',"') + node.hex() + '"')
        first = False
        if len(batch) >= 1000:
            yield "".join(batch)
            batch = []
    yield "".join(batch) + "]}"
    # known only once the proof has read the other leaves
    yield ',"missing_rows":' + json.dumps(missing_rows) + "}"


def export_stream(*, event_filter: EventFilter, fmt: str, checkpoint: AuditCheckpoint | None) -> Iterator[bytes]:
    """The bytes of an export of the events selected by `event_filter` (see module docstring)."""
    if fmt not in ("csv", "jsonl"):
        raise ValueError("format must be csv or jsonl")
    size = checkpoint.tree_size if checkpoint else 0
    rows = _Rows()
    if fmt == "csv":
        yield (",".join(COLUMNS) + "\n").encode()
    postgres = connection.vendor == "postgresql"
    yield from (_pg_rows if postgres else _orm_rows)(event_filter, fmt, size, rows)
    members = _pg_member_runs(event_filter, size) if postgres else PositionRuns(tuple(r) for r in rows.runs)
    meta = {
        "format": FORMAT,
        "leaf": LEAF_RULE,
        "leaf_version": VERSION,
        "columns": list(COLUMNS),
        "exported_at": format_time(timezone.now()),
        "filters": event_filter.describe(),
        "rows": {"sealed": rows.sealed, "unsealed": rows.unsealed},
        "public_key_url": PUBLIC_KEY_PATH,
        "checkpoint": checkpoint.as_document() if checkpoint else None,
        "pruned_below": prune_boundary(),
    }
    missing: list[int] = []
    others = _other_leaves(event_filter, size, missing)
    pieces = _trailer(meta, multiproof(size, members, others), missing)
    try:
        if fmt == "jsonl":
            for piece in pieces:
                yield piece.encode()
            yield b"\n"
        else:
            yield f'{CSV_TRAILER_MARK},"'.encode()
            for piece in pieces:
                yield piece.replace('"', '""').encode()
            yield b'"\n'
    finally:
        others.close()  # the proof reads exactly the leaves it needs: end the server-side cursor now
