"""Rewriting encrypted columns in place, batch by batch, and binding column-bound values to rows.

`rewrite_in_batches` walks a table in primary-key order, each batch in its own transaction with
its rows locked, so a long rewrite can be stopped at any moment and run again
(`manage.py rotate_encryption_keys` and the row-binding migrations use it).

`bind_values_to_rows` re-encrypts values of the first format (associated data
``"<table>.<column>"``) so that they are bound to their row (``"<table>.<column>@<row key>"``,
core.crypto.fields). It is idempotent and resumable: a value that already decrypts under its
row's associated data is left alone. `bind_rows_operation` wraps it (and `fill_row_keys`) for
a migration: the ones that introduced `row_key` run it (add the column nullable; a non-atomic
migration with ``RunPython(bind_rows_operation({...}), bind_rows_operation({...}, unbind=True))``;
then make the column a RowKeyField), and so must a later migration that adds an encrypted column
with a default to a table that already has rows (the schema editor fills them with one
column-bound value).
"""

import uuid
from collections.abc import Callable, Sequence

from django.db import transaction

from core.crypto.fields import column_associated_data, row_associated_data
from core.crypto.keyring import DecryptionError, Keyring, get_keyring


def rewrite_in_batches(
    connection,
    *,
    table: str,
    pk: str,
    columns: Sequence[str],
    rewrite: Callable[[tuple], dict[str, str]],
    where: str = "",
    params: Sequence = (),
    batch_size: int = 500,
    max_batches: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> tuple[int, int, bool]:
    """Rewrite rows of `table` matching `where` (SQL over its columns, with `params`).

    Each batch selects up to `batch_size` rows ``(pk, *columns)`` after the last one seen, in
    primary-key order, locked FOR UPDATE where the database can; `rewrite(row)` returns
    ``{column: new value}`` for what changes (empty: nothing) and the batch's UPDATEs commit
    together. `progress(rows in the batch)` is called after each commit.
    Returns (batches done, values changed, whether the table was walked to its end).
    """
    quote = connection.ops.quote_name
    selected = ", ".join(quote(name) for name in (pk, *columns))
    batches = changed = 0
    last_pk = None
    while True:
        if max_batches is not None and batches >= max_batches:
            return batches, changed, False
        conditions = [f"({where})"] if where else []
        batch_params = list(params)
        if last_pk is not None:
            conditions.append(f"{quote(pk)} > %s")
            batch_params.append(last_pk)
        select = f"SELECT {selected} FROM {quote(table)}"  # noqa: S608 - names are quoted identifiers
        if conditions:
            select += " WHERE " + " AND ".join(conditions)
        select += f" ORDER BY {quote(pk)} LIMIT {int(batch_size)}"
        if connection.features.has_select_for_update:
            select += " FOR UPDATE"
        with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
            cursor.execute(select, batch_params)
            rows = cursor.fetchall()
            for row in rows:
                changes = rewrite(row)
                if not changes:
                    continue
                assignments = ", ".join(f"{quote(column)} = %s" for column in changes)
                cursor.execute(
                    f"UPDATE {quote(table)} SET {assignments} WHERE {quote(pk)} = %s",  # noqa: S608
                    [*changes.values(), row[0]],
                )
                changed += len(changes)
        if not rows:
            return batches, changed, True
        batches += 1
        last_pk = rows[-1][0]
        if progress is not None:
            progress(len(rows))


def bind_values_to_rows(
    connection,
    *,
    table: str,
    columns: Sequence[str],
    pk: str = "id",
    row_key: str = "row_key",
    batch_size: int = 500,
    max_batches: int | None = None,
    unbind: bool = False,
) -> tuple[int, bool]:
    """Bind the column-bound values of `columns` in `table` to their rows (`unbind`: the reverse,
    for migrating backwards). Values already in the wanted form are skipped; the others are
    re-encrypted under the keyring's primary key. A value that decrypts in neither form raises
    DecryptionError naming the table, column and row. Returns (values rewritten, finished)."""
    keyring = get_keyring()

    def rewrite(row: tuple) -> dict[str, str]:
        row_pk, key, *values = row
        changes = {}
        for column, value in zip(columns, values, strict=True):
            if value is None:
                continue
            bound, loose = row_associated_data(table, column, key), column_associated_data(table, column)
            wanted, found = (loose, bound) if unbind else (bound, loose)
            if _decrypts(keyring, value, wanted):
                continue
            try:
                plaintext = keyring.decrypt(value, aad=found)
            except DecryptionError as exc:
                raise DecryptionError(f"{table}.{column} row {row_pk}: {exc}") from None
            changes[column] = keyring.encrypt(plaintext, aad=wanted)
        return changes

    _, changed, finished = rewrite_in_batches(
        connection, table=table, pk=pk, columns=[row_key, *columns], rewrite=rewrite,
        batch_size=batch_size, max_batches=max_batches,
    )
    return changed, finished


def fill_row_keys(connection, *, table: str, pk: str = "id", row_key: str = "row_key") -> int:
    """Give every row of `table` whose `row_key` is NULL a random one (batches; resumable).
    Returns how many rows got one."""
    native = connection.features.has_native_uuid_field

    def rewrite(row: tuple) -> dict:
        key = uuid.uuid4()
        return {row_key: key if native else key.hex}

    _, changed, _ = rewrite_in_batches(
        connection, table=table, pk=pk, columns=[row_key], rewrite=rewrite,
        where=f"{connection.ops.quote_name(row_key)} IS NULL",
    )
    return changed


def bind_rows_operation(tables: dict[str, Sequence[str]], *, unbind: bool = False):
    """A RunPython function for a migration that gives existing rows their row key: fills the
    NULL row keys of each table, then binds (`unbind`: unbinds) its encrypted `columns`."""

    def operation(apps, schema_editor):
        for table, columns in tables.items():
            if not unbind:
                fill_row_keys(schema_editor.connection, table=table)
            bind_values_to_rows(schema_editor.connection, table=table, columns=columns, unbind=unbind)

    return operation


def _decrypts(keyring: Keyring, envelope: str, aad: bytes) -> bool:
    try:
        keyring.decrypt(envelope, aad=aad)
    except DecryptionError:
        return False
    return True
