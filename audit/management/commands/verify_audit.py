import sys

from django.core.management.base import BaseCommand

from audit.verification import audit_verify


class Command(BaseCommand):
    help = (
        "Recompute every audit leaf from its event row, every checkpoint root, signature and frontier; "
        "report the first bad position and exit 1 on any failure."
    )

    def handle(self, *args, **options):
        def progress(leaves: int) -> None:
            self.stderr.write(f"... {leaves} leaves checked")

        report = audit_verify(progress=progress)
        self.stdout.write(f"leaves: {report.leaves}, checkpoints: {report.checkpoints}, "
                          f"verified tree size: {report.verified_size}")
        if report.ok:
            self.stdout.write(self.style.SUCCESS("audit log OK"))
            return
        self.stdout.write(self.style.ERROR(f"audit log FAILED, first bad position: {report.first_bad_position}"))
        for problem in report.problems:
            self.stdout.write(f"  {problem}")
        sys.exit(1)
