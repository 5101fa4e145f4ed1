"""copy_create writes what bulk_create writes: ids, encrypted values bound to their row, JSON,
database defaults and generated columns, and the database's constraints and triggers still run."""

import datetime

import pytest
from auditlog.models import LogEntry
from django.contrib.auth import get_user_model
from django.contrib.contenttypes.models import ContentType
from django.db import IntegrityError, connection, transaction

from access.models import Residency, Resident, ResidentSearchTerm
from audit.actions import Action, Outcome
from audit.models import AuditEvent
from audit.services import _event
from core.copy_insert import copy_create, copy_values
from core.models import DataChange
from tests import factories

pytestmark = pytest.mark.django_db


def _user():
    return get_user_model().objects.create_user(username=f"copy-{get_user_model().objects.count()}")


def _raw(table: str, column: str, pk: int):
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {column} FROM {table} WHERE id = %s", [pk])  # noqa: S608 - the test's own names
        return cursor.fetchone()[0]


def test_ids_come_from_the_sequence_and_match_the_rows():
    company = factories.company()
    users = [_user() for _ in range(3)]
    people = [Resident(company=company, user=user, full_name=f"Иванова Мария {n}", phone=f"+7916000000{n}")
              for n, user in enumerate(users)]
    copy_create(people)
    assert all(person.pk is not None and not person._state.adding for person in people)
    assert len({person.pk for person in people}) == 3
    for person in people:
        assert Resident.objects.get(pk=person.pk).full_name == person.full_name
    later = factories.resident(company_=company)  # the sequence moved on: no clash with an ordinary save
    assert later.pk > max(person.pk for person in people)


def test_encrypted_values_are_encrypted_and_bound_to_their_row():
    company = factories.company()
    person = Resident(company=company, user=_user(), full_name="Петров Пётр", phone="+79161234567",
                      email="petrov@example.ru")
    copy_create([person])
    stored = _raw("access_resident", "full_name", person.pk)
    assert "Петров" not in stored
    assert stored != person.full_name
    assert Resident.objects.get(pk=person.pk).phone == "+79161234567"
    other = factories.resident(company_=company)
    with connection.cursor() as cursor:  # moved to another row, the value no longer decrypts
        cursor.execute("UPDATE access_resident SET full_name = %s WHERE id = %s", [stored, other.pk])
    with pytest.raises(Exception):  # noqa: B017, PT011 - the keyring's own error
        Resident.objects.get(pk=other.pk).full_name  # noqa: B018


def test_json_and_plain_values_round_trip():
    resident = factories.resident()
    entry = LogEntry(content_type=ContentType.objects.get_for_model(Resident), object_pk=str(resident.pk),
                     object_id=resident.pk, object_repr=str(resident), action=LogEntry.Action.CREATE,
                     changes={"full_name": ["[encrypted]", "[encrypted]"], "suspended": [None, "False"]})
    copy_create([entry])
    stored = LogEntry.objects.get(pk=entry.pk)
    assert stored.changes == entry.changes
    assert stored.timestamp is not None  # the field's own default (pre_save path), not the database's


def test_generated_columns_are_left_to_the_database():
    events = [_event(action=Action.ADMIN_CHANGE, outcome=Outcome.SUCCESS, object_type="resident",
                     object_ref=f"resident:{n}", reason="created") for n in range(2)]
    copy_create(events)
    assert AuditEvent.objects.filter(pk__in=[event.pk for event in events]).count() == 2
    assert _raw("audit_event", "leaf_v2", events[0].pk) is not None


def test_the_database_constraints_still_hold_and_nothing_stays():
    resident = factories.resident()
    digest = "d" * 64
    ResidentSearchTerm.objects.create(resident=resident, digest=digest)
    before = set(ResidentSearchTerm.objects.filter(resident=resident).values_list("digest", flat=True))
    with pytest.raises(IntegrityError), transaction.atomic():  # Django's error, as bulk_create raises it
        copy_create([ResidentSearchTerm(resident=resident, digest="e" * 64),
                     ResidentSearchTerm(resident=resident, digest=digest)])
    assert set(ResidentSearchTerm.objects.filter(resident=resident).values_list("digest", flat=True)) == before


def test_the_change_log_triggers_fire():
    resident = factories.resident()
    unit = factories.unit(building_=factories.building(company_=resident.company))
    before = DataChange.objects.order_by("-seq").values_list("seq", flat=True).first() or 0
    copy_create([Residency(resident=resident, unit=unit, kind=Residency.Kind.OWNER,
                           valid_from=datetime.date(2026, 1, 1))])
    assert f"r:{resident.pk}" in set(DataChange.objects.filter(seq__gt=before).values_list("tag", flat=True))


def test_plain_values_take_the_fields_defaults_and_the_databases_id():
    resident = factories.resident()
    content_type = ContentType.objects.get_for_model(Resident)
    last = LogEntry.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
    written = copy_values(LogEntry, fields=["content_type_id", "object_pk", "object_id", "object_repr", "action",
                                            "changes"],
                          rows=[[content_type.pk, str(resident.pk), resident.pk, str(resident), LogEntry.Action.CREATE,
                                 {"full_name": ["[encrypted]", "[encrypted]"]}]])
    assert written == 1
    entry = LogEntry.objects.get(pk__gt=last, object_id=resident.pk, action=LogEntry.Action.CREATE,
                                 changes__has_key="full_name")
    assert entry.changes == {"full_name": ["[encrypted]", "[encrypted]"]}
    assert (entry.changes_text, entry.actor_id, entry.additional_data) == ("", None, None)
    assert entry.timestamp is not None


def test_plain_values_meet_the_same_constraints():
    resident = factories.resident()
    digest = ResidentSearchTerm.objects.filter(resident=resident).values_list("digest", flat=True).first()
    with pytest.raises(IntegrityError), transaction.atomic():
        copy_values(ResidentSearchTerm, fields=["resident_id", "digest"], rows=[(resident.pk, digest)])
