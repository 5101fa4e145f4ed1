from django.core.management.base import BaseCommand

from audit.sealing import audit_seal_pending


class Command(BaseCommand):
    help = "Seal every committed, unsealed audit event now (the beat task does it every minute)."

    def handle(self, *args, **options):
        self.stdout.write(f"sealed {audit_seal_pending(max_rounds=10**6)} events")
