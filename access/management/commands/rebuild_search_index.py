"""Recompute the admin's search digests of every resident and car (after SEARCH_INDEX_KEY changed)."""

from django.core.management.base import BaseCommand
from django.db import transaction

from access.models import Resident, ResidentSearchTerm, Vehicle
from access.search import search_index_rebuild


class Command(BaseCommand):
    help = "Recompute the blind indexes residents and cars are searched by (run after changing SEARCH_INDEX_KEY)."

    def handle(self, *args, **options):
        with transaction.atomic():
            count = search_index_rebuild(resident_model=Resident, term_model=ResidentSearchTerm,
                                         vehicle_model=Vehicle)
        self.stdout.write(f"{count} rows indexed")
