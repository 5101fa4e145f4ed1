"""Seed a demo: filled in by the domain model (issue "Domain model")."""

from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Create demo data for `make run` (idempotent)."

    def handle(self, *args, **options):
        self.stdout.write("seed_demo: nothing to seed yet")
