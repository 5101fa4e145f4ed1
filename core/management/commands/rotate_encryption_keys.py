"""Re-encrypt every encrypted column with the primary (first) key of FIELD_ENCRYPTION_KEYS.

Walks each encrypted field of each model (core.crypto.fields.encrypted_fields), selects
rows whose value does not start with "v1:<primary kid>:", ordered by primary key, and rewrites
them in batches; each batch is its own transaction with the rows locked, so the command can be
interrupted at any moment and re-run: rows already carrying the primary kid are skipped. Once
it reports nothing left, the old key can be removed from the keyring.
"""

import sys
import time

from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction

from core.crypto.fields import encrypted_fields
from core.crypto.keyring import DecryptionError, get_keyring


class ProgressBar:
    """A plain-text progress bar on stderr (`\\r`-redrawn on a terminal, one line per 10% otherwise)."""

    def __init__(self, total: int, label: str, stream=None, width: int = 30):
        self.total, self.label, self.width = total, label, width
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.done = 0
        self._last_decile = -1

    def advance(self, n: int) -> None:
        self.done += n
        share = self.done / self.total if self.total else 1.0
        decile = int(share * 10)
        if not self.tty and decile == self._last_decile and self.done < self.total:
            return
        self._last_decile = decile
        filled = int(share * self.width)
        bar = "#" * filled + "." * (self.width - filled)
        end = "" if self.tty and self.done < self.total else "\n"
        prefix = "\r" if self.tty else ""
        self.stream.write(f"{prefix}[{bar}] {self.done}/{self.total} {self.label}{end}")
        self.stream.flush()


class _Raw:
    """The command's stderr without the automatic line ending (so `\\r` can redraw)."""

    def __init__(self, wrapper):
        self.wrapper = wrapper

    def write(self, text):
        self.wrapper.write(text, ending="")

    def flush(self):
        self.wrapper.flush()

    def isatty(self):
        return self.wrapper.isatty()


class Command(BaseCommand):
    help = "Re-encrypt encrypted columns with the primary key of FIELD_ENCRYPTION_KEYS (resumable)."

    def add_arguments(self, parser):
        parser.add_argument("--batch-size", type=int, default=500)
        parser.add_argument("--dry-run", action="store_true", help="only count the values still to rotate")
        parser.add_argument(
            "--max-batches", type=int, default=None,
            help="stop after this many batches (to spread the work; re-run to continue)",
        )

    def handle(self, *args, batch_size, dry_run, max_batches, **options):
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1")
        keyring = get_keyring()
        # LIKE pattern of "already rotated"; `_` may occur in a kid and is a LIKE wildcard.
        prefix = f"v1:{keyring.primary_kid}:".replace("\\", "\\\\").replace("_", "\\_").replace("%", "\\%")
        quote = connection.ops.quote_name
        batches = rotated = remaining_total = 0
        started = time.monotonic()
        for model, field in encrypted_fields():
            table, column, pk = model._meta.db_table, field.column, model._meta.pk.column
            aad = field.associated_data
            where = f"{quote(column)} IS NOT NULL AND {quote(column)} NOT LIKE %s ESCAPE '\\'"
            with connection.cursor() as cursor:
                cursor.execute(f"SELECT COUNT(*) FROM {quote(table)} WHERE {where}", [prefix + "%"])  # noqa: S608
                todo = cursor.fetchone()[0]
            label = f"{table}.{column}"
            if dry_run or todo == 0:
                remaining_total += todo
                self.stdout.write(f"{label}: {todo} value(s) to rotate")
                continue
            bar = ProgressBar(todo, label, stream=_Raw(self.stderr))
            last_pk = None
            while True:
                if max_batches is not None and batches >= max_batches:
                    remaining_total += todo - bar.done
                    break
                with transaction.atomic():
                    params = [prefix + "%"]
                    after = ""
                    if last_pk is not None:
                        after = f" AND {quote(pk)} > %s"
                        params.append(last_pk)
                    select = (
                        f"SELECT {quote(pk)}, {quote(column)} FROM {quote(table)} WHERE {where}{after} "  # noqa: S608
                        f"ORDER BY {quote(pk)} LIMIT {int(batch_size)}"
                    )
                    if connection.features.has_select_for_update:
                        select += " FOR UPDATE"
                    with connection.cursor() as cursor:
                        cursor.execute(select, params)
                        rows = cursor.fetchall()
                        for row_pk, envelope in rows:
                            try:
                                plaintext = keyring.decrypt(envelope, aad=aad)
                            except DecryptionError as exc:
                                raise CommandError(f"{label} row {row_pk}: {exc}") from None
                            cursor.execute(
                                f"UPDATE {quote(table)} SET {quote(column)} = %s WHERE {quote(pk)} = %s",  # noqa: S608
                                [keyring.encrypt(plaintext, aad=aad), row_pk],
                            )
                if not rows:
                    break
                batches += 1
                rotated += len(rows)
                last_pk = rows[-1][0]
                bar.advance(len(rows))
        elapsed = time.monotonic() - started
        if dry_run:
            self.stdout.write(f"dry run: {remaining_total} value(s) not under primary key {keyring.primary_kid!r}")
        elif remaining_total:
            self.stdout.write(
                f"rotated {rotated} value(s) in {batches} batch(es), {elapsed:.1f} s; "
                f"{remaining_total} left - run again to continue"
            )
        else:
            self.stdout.write(
                f"rotated {rotated} value(s) in {batches} batch(es), {elapsed:.1f} s; "
                f"every encrypted value now uses key {keyring.primary_kid!r}"
            )
