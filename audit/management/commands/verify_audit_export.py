import sys
from pathlib import Path

from django.core.management.base import BaseCommand

from audit.verification import verify_export


class Command(BaseCommand):
    help = "Verify an audit export file offline: checkpoint signature and every sealed row against the root."

    def add_arguments(self, parser):
        parser.add_argument("file")
        parser.add_argument("--public-key", help="PEM file of the signing key (default: this service's key)")

    def handle(self, *args, file, public_key=None, **options):
        pem = Path(public_key).read_bytes() if public_key else None
        with open(file, encoding="utf-8", newline="") as handle:
            report = verify_export(handle, pem)
        self.stdout.write(f"sealed rows: {report.sealed_rows}, unsealed rows (not proven): {report.unsealed_rows}, "
                          f"tree size: {report.tree_size}")
        if report.ok:
            self.stdout.write(self.style.SUCCESS("export OK: every sealed row is in the signed log, unaltered"))
            return
        for problem in report.problems:
            self.stdout.write(self.style.ERROR(problem))
        sys.exit(1)
