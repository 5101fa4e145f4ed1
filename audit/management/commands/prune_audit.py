import datetime

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from audit.services import audit_prune


class Command(BaseCommand):
    help = (
        "Retention: delete sealed audit events older than --older-than-days, keeping their leaf hashes "
        "and every checkpoint (the log and old exports still verify). Recorded as audit.pruned."
    )

    def add_arguments(self, parser):
        parser.add_argument("--older-than-days", type=int, required=True)

    def handle(self, *args, older_than_days, **options):
        if older_than_days < 1:
            raise CommandError("--older-than-days must be at least 1")
        prunes = audit_prune(older_than=timezone.now() - datetime.timedelta(days=older_than_days))
        if not prunes:
            self.stdout.write("nothing to prune")
        for prune in prunes:
            self.stdout.write(f"{prune.log.name}: pruned {prune.deleted} events below position {prune.below_position}")
