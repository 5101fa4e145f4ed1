"""Fixtures of the audit tests: staff users in companies, a compliance officer, tampering."""

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import connection

from core.security.roles import COMPLIANCE_OFFICER

# username -> management company ids, read by the resolver below (COMPANY_RESOLVER in tests)
COMPANIES: dict[str, set[int]] = {}


def companies_of(user) -> set[int]:
    return COMPANIES.get(user.username, set())


@pytest.fixture(autouse=True)
def _company_resolver(settings):
    settings.COMPANY_RESOLVER = "tests.audit.conftest.companies_of"
    COMPANIES.clear()
    yield
    COMPANIES.clear()


@pytest.fixture
def make_staff(db):
    def make(username: str, *, companies: set[int], compliance: bool = True, superuser: bool = False):
        user = get_user_model().objects.create_user(username, password="a-long-test-password-1", is_staff=True,
                                                    is_superuser=superuser)
        if compliance:
            group, _ = Group.objects.get_or_create(name=COMPLIANCE_OFFICER)
            user.groups.add(group)
        COMPANIES[username] = set(companies)
        return user

    return make


def tamper(sql: str, params=()) -> None:
    """Change audit rows behind the application's back (as an attacker with DB access would)."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET session_replication_role = replica")  # triggers off
        try:
            cursor.execute(sql, params)
        finally:
            if connection.vendor == "postgresql":
                cursor.execute("SET session_replication_role = DEFAULT")


def log_event_ids(company_id: int | None) -> list[int]:
    """The event ids of one log in position order (the membership rule walked by hand)."""
    from audit.membership import membership
    from audit.models import AuditEvent, AuditSeal

    latest = AuditSeal.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
    plan = membership(after_seal=0, through_seal=latest)
    ids: list[int] = []
    for segment in plan.segments:
        events = AuditEvent.objects.filter(plan.q(segment), company_id=company_id)
        if company_id is None:
            events = AuditEvent.objects.filter(plan.q(segment), company_id__isnull=True)
        ids.extend(events.order_by("id").values_list("id", flat=True))
    return ids


def reseal_all() -> None:
    """Throw the seals away and seal again (after rows were changed on purpose, as a test fixture)."""
    from audit.sealing import audit_seal_pending

    tamper("DELETE FROM audit_log_link")
    tamper("DELETE FROM audit_log_checkpoint")
    tamper("DELETE FROM audit_seal")
    audit_seal_pending()
