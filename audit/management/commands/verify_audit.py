import sys

from django.core.management.base import BaseCommand

from audit.services import audit_verify


class Command(BaseCommand):
    help = (
        "Verify every audit log: each checkpoint's leaves, root, frontier and signature (keyring), every "
        "event against the leaf sealed for it, the legacy log and its link; report the first bad position "
        "per log and exit 1 on any failure."
    )

    def handle(self, *args, **options):
        def progress(leaves: int) -> None:
            self.stderr.write(f"... {leaves} events checked")

        report = audit_verify(progress=progress)
        self.stdout.write(f"logs: {report.logs}, checkpoints: {report.checkpoints}, events: {report.leaves}, "
                          f"verified through seal: {report.verified_seal}")
        if report.ok:
            self.stdout.write(self.style.SUCCESS("audit log OK"))
            return
        first = ", ".join(f"{log} at {position}" for log, position in sorted(report.first_bad.items()))
        self.stdout.write(self.style.ERROR(f"audit log FAILED, first bad position: {first or 'see below'}"))
        for problem in report.problems:
            self.stdout.write(f"  {problem}")
        sys.exit(1)
