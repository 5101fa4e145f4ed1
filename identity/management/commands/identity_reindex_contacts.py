"""Rebuild the contact blind index (identity.contacts) of every resident, e.g. after PSEUDONYM_KEY changed."""

from django.core.management.base import BaseCommand

from access.models import Resident
from identity.contacts import index_resident


class Command(BaseCommand):
    help = "Rebuild the phone/e-mail blind index of all residents."

    def handle(self, *args, **options):
        count = 0
        for resident in Resident.objects.only("pk", "phone", "email").iterator():
            index_resident(resident_id=resident.pk, phone=resident.phone, email=resident.email)
            count += 1
        self.stdout.write(f"indexed {count} resident(s)")
