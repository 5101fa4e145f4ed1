from django.core.management.base import BaseCommand

from audit.sealing import audit_seal_pending


class Command(BaseCommand):
    help = (
        "Seal every committed, unsealed audit event now (the beat task does it every minute). "
        "--sweep also seals events that appeared in a seal's gap after AUDIT_SEAL_GAP_TTL_S."
    )

    def add_arguments(self, parser):
        parser.add_argument("--sweep", action="store_true", help="look for late events in every gap ever recorded")

    def handle(self, *args, sweep=False, **options):
        self.stdout.write(f"sealed {audit_seal_pending(max_rounds=10**6, sweep=sweep)} events")
