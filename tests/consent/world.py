"""Consent rows for the admin isolation tests' two-company world (tests/admin/conftest.py).

`make_company_world` returns one row of every company-scoped model; the consent admins are
company-scoped, so the world needs a Consent and a FaceEnrolment per company:

    from tests.consent.world import consent_rows
    ...
    return {..., **consent_rows(company=company, building=building, partner=partner, resident=resident)}

Rows are written directly (the world's contract does not allow faces, and no outbox is involved).
"""

import datetime

from django.utils import timezone

from consent.models import Consent, FaceEnrolment
from consent.services import consent_text_publish


def consent_rows(*, company, building, partner, resident) -> dict:
    text = consent_text_publish(version="world", body="Согласие на обработку изображения лица (тест).")
    now = timezone.now()
    consent = Consent.objects.create(
        resident_id=resident.pk, company_id=company.pk, building_id=building.pk, partner=partner, text=text,
        granted_at=now, retention_until=now + datetime.timedelta(days=30),
    )
    enrolment = FaceEnrolment.objects.create(
        consent=consent, partner=partner, resident_id=resident.pk, subject_id=f"sub_world{resident.pk}",
    )
    return {Consent: consent, FaceEnrolment: enrolment}
