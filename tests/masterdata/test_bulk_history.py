"""Rows written in bulk keep the same admin history (django-auditlog) as rows saved one by one."""

import pytest
from auditlog.context import set_actor
from auditlog.diff import model_instance_diff
from auditlog.models import LogEntry

from access.models import Resident
from access.services.onboarding import NewResident, residents_create_many
from core.portal.auditlog_mask import _creation_changes
from tests import factories

pytestmark = pytest.mark.django_db


def test_the_changes_are_auditlogs_own():
    resident = factories.resident(unit_=factories.unit())
    car = factories.vehicle(resident_=resident)
    for obj in (resident, resident.residencies.get(), car, resident.residencies.get().unit):
        assert _creation_changes([obj]) == [model_instance_diff(None, obj)]


def test_a_bulk_created_resident_has_the_entry_a_saved_one_has():
    company = factories.company()
    manager = factories.staff_user(company_=company)
    with set_actor(manager, remote_addr="192.0.2.7"):
        saved = factories.resident(company_=company)
        (bulk,) = residents_create_many(people=[NewResident(company=company, full_name="Иванова Мария",
                                                            phone="+79160000001")], actor=manager)
    one, other = LogEntry.objects.get_for_object(saved).get(), LogEntry.objects.get_for_object(bulk).get()
    assert (other.action, other.actor, other.remote_addr) == (one.action, one.actor, one.remote_addr)
    assert set(other.changes_dict) == set(one.changes_dict)
    assert other.changes_dict["full_name"] == one.changes_dict["full_name"] == ["[encrypted]", "[encrypted]"]
    assert Resident.objects.get(pk=bulk.pk).full_name == "Иванова Мария"


def test_an_actor_context_that_has_ended_is_not_used():
    company = factories.company()
    manager = factories.staff_user(company_=company)
    with set_actor(manager):
        pass  # a request that ended (auditlog's context variable keeps its value)
    manager.delete()
    (bulk,) = residents_create_many(people=[NewResident(company=company, full_name="Петров Пётр")])
    assert LogEntry.objects.get_for_object(bulk).get().actor is None
