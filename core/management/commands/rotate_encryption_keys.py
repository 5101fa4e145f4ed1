"""Re-encrypt every encrypted column with the primary (first) key of FIELD_ENCRYPTION_KEYS.

Walks each encrypted field of each model (core.crypto.fields.encrypted_fields), selects
rows whose value does not start with "v1:<primary kid>:", ordered by primary key, and rewrites
them in batches (core.crypto.row_binding.rewrite_in_batches), each value still bound to its row;
each batch is its own transaction with the rows locked, so the command can be interrupted at any
moment and re-run: rows already carrying the primary kid are skipped. Once
it reports nothing left, the old key can be removed from the keyring.
"""

import sys
import time

from django.core.management.base import BaseCommand, CommandError
from django.db import connection

from core.crypto.fields import ROW_KEY_FIELD, encrypted_fields
from core.crypto.keyring import DecryptionError, get_keyring
from core.crypto.row_binding import rewrite_in_batches


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
            table, column = model._meta.db_table, field.column
            row_key = model._meta.get_field(ROW_KEY_FIELD).column
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

            def rewrite(row, field=field, label=label):
                row_pk, key, envelope = row
                aad = field.associated_data_for(key)
                try:
                    plaintext = keyring.decrypt(envelope, aad=aad)
                except DecryptionError as exc:
                    raise CommandError(f"{label} row {row_pk}: {exc}") from None
                return {field.column: keyring.encrypt(plaintext, aad=aad)}

            done, changed, finished = rewrite_in_batches(
                connection, table=table, pk=model._meta.pk.column, columns=[row_key, column], rewrite=rewrite,
                where=where, params=[prefix + "%"], batch_size=batch_size,
                max_batches=None if max_batches is None else max_batches - batches, progress=bar.advance,
            )
            batches += done
            rotated += changed
            if not finished:
                remaining_total += todo - bar.done
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
