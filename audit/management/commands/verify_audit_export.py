import sys
from pathlib import Path

from django.core.management.base import BaseCommand

from audit.verification import verify_export


class Command(BaseCommand):
    help = (
        "Verify an audit export file offline: the signed statement, that the rows are exactly the ones it "
        "names (none missing, added, repeated or moved), and that they hash to the signed checkpoints."
    )

    def add_arguments(self, parser):
        parser.add_argument("file")
        parser.add_argument("--public-key", action="append",
                            help="PEM file(s) of the signing keys (default: this service's keyring)")

    def handle(self, *args, file, public_key=None, **options):
        pem = b"".join(Path(path).read_bytes() for path in public_key) if public_key else None
        with open(file, encoding="utf-8", newline="") as handle:
            report = verify_export(handle, pem)
        kind = "filtered subset" if report.filtered else "complete ranges"
        self.stdout.write(f"logs: {report.logs} ({kind}), sealed rows: {report.sealed_rows}, "
                          f"unsealed rows (not proven): {report.unsealed_rows}")
        if report.ok:
            self.stdout.write(self.style.SUCCESS("export OK: the rows are exactly those the signed statement names, "
                                                 "each in its signed log, unaltered"))
            return
        for problem in report.problems:
            self.stdout.write(self.style.ERROR(problem))
        sys.exit(1)
