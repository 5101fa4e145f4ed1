"""`manage.py rotate_encryption_keys`: two keys, batches, dry run, resume after interruption."""

import base64
import io

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.db import connection
from django_otp.oath import TOTP

from access.models import Resident, Vehicle
from core.auth.otp import totp_device_create
from core.auth.sessions import SessionStore
from core.crypto.fields import encrypted_fields
from core.crypto.keyring import DecryptionError
from core.models import EncryptedTOTPDevice
from partners.models import PartnerCredentials
from tests import factories

OLD = "old:" + base64.b64encode(b"o" * 32).decode()
NEW = "new:" + base64.b64encode(b"n" * 32).decode()


def stored_kids() -> dict[str, int]:
    """{kid: how many values} over every encrypted column in the database."""
    counts: dict[str, int] = {}
    with connection.cursor() as cursor:
        for model, field in encrypted_fields():
            cursor.execute(
                f"SELECT {field.column} FROM {model._meta.db_table} WHERE {field.column} IS NOT NULL"  # noqa: S608
            )
            for (value,) in cursor.fetchall():
                kid = value.split(":")[1]
                counts[kid] = counts.get(kid, 0) + 1
    return counts


def readable_everything():
    """Decrypt every encrypted value through the ORM (raises DecryptionError otherwise)."""
    return (
        [(r.full_name, r.phone, r.email) for r in Resident.objects.all()],
        [v.plate for v in Vehicle.objects.all()],
        [
            (c.client_secret, c.plate_token_key, c.subject_key, c.webhook_secret)
            for c in PartnerCredentials.objects.all()
        ],
    )


def run(*args):
    out, err = io.StringIO(), io.StringIO()
    call_command("rotate_encryption_keys", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


@pytest.fixture
def old_data(settings):
    settings.FIELD_ENCRYPTION_KEYS = OLD
    company = factories.company()
    building = factories.building(company_=company)
    factories.contract(company_=company, buildings=[building])
    for _ in range(7):
        person = factories.resident(unit_=factories.unit(building_=building))
        factories.vehicle(resident_=person)
    before = readable_everything()
    assert set(stored_kids()) == {"old"}
    return before


@pytest.mark.django_db
def test_rotation_with_two_keys(settings, old_data):
    total = sum(stored_kids().values())
    assert total == 7 * 4 + 5  # 3 fields per resident + 1 plate, 5 secrets of one credentials row
    settings.FIELD_ENCRYPTION_KEYS = f"{NEW},{OLD}"
    assert readable_everything() == old_data  # old rows readable with the new key first
    factories.resident()  # new writes use the new key
    assert stored_kids()["new"] == 3

    out, err = run("--batch-size", "3")
    assert stored_kids() == {"new": total + 3}
    assert f"rotated {total} value(s)" in out
    assert "every encrypted value now uses key 'new'" in out
    assert "access_resident.phone" in err  # the progress bar
    assert "7/7" in err

    settings.FIELD_ENCRYPTION_KEYS = NEW  # the old key can go
    assert readable_everything()[0][:7] == old_data[0]
    assert readable_everything()[1:] == old_data[1:]


@pytest.mark.django_db
def test_without_the_old_key_old_rows_do_not_decrypt(settings, old_data):
    settings.FIELD_ENCRYPTION_KEYS = NEW
    with pytest.raises(DecryptionError, match="'old'"):
        readable_everything()
    with pytest.raises(CommandError, match="not in the keyring"):
        run()
    settings.FIELD_ENCRYPTION_KEYS = f"{NEW},{OLD}"
    assert set(stored_kids()) == {"old"}  # the failed run changed nothing


@pytest.mark.django_db
def test_dry_run_counts_and_changes_nothing(settings, old_data):
    settings.FIELD_ENCRYPTION_KEYS = f"{NEW},{OLD}"
    before = stored_kids()
    out, _ = run("--dry-run")
    assert f"dry run: {before['old']} value(s) not under primary key 'new'" in out
    assert "access_resident.full_name: 7 value(s) to rotate" in out
    assert stored_kids() == before


@pytest.mark.django_db
def test_resume_after_an_interruption(settings, old_data):
    settings.FIELD_ENCRYPTION_KEYS = f"{NEW},{OLD}"
    total = stored_kids()["old"]
    out, _ = run("--batch-size", "2", "--max-batches", "3")  # stops part-way, as if killed
    first = stored_kids()
    assert 0 < first["new"] <= 6
    assert first["new"] + first["old"] == total
    assert f"{first['old']} left - run again to continue" in out
    run("--batch-size", "2", "--max-batches", "3")  # continues where the first run stopped
    second = stored_kids()
    assert first["new"] < second["new"] <= first["new"] + 6
    out, _ = run("--batch-size", "500")
    assert stored_kids() == {"new": total}
    assert f"rotated {second['old']} value(s)" in out
    out, _ = run()  # nothing left: a no-op
    assert "rotated 0 value(s)" in out
    assert stored_kids() == {"new": total}
    settings.FIELD_ENCRYPTION_KEYS = NEW
    assert readable_everything() == old_data


@pytest.mark.django_db
def test_a_kid_with_an_underscore_is_matched_literally(settings):
    """`_` is a LIKE wildcard: a value under "n1x" must still rotate when the primary is "n_x"."""
    previous = "n1x:" + base64.b64encode(b"1" * 32).decode()
    settings.FIELD_ENCRYPTION_KEYS = previous
    factories.resident()
    settings.FIELD_ENCRYPTION_KEYS = "n_x:" + base64.b64encode(b"2" * 32).decode() + "," + previous
    run()
    assert set(stored_kids()) == {"n_x"}


def test_batch_size_must_be_positive():
    with pytest.raises(CommandError, match="at least 1"):
        run("--batch-size", "0")


@pytest.mark.django_db
def test_rotation_covers_totp_keys_and_sessions(settings):
    """Staff TOTP secrets and session data are encrypted columns too: after a rotation and the old
    key's removal, the authenticator app and the signed-in browser keep working."""
    settings.FIELD_ENCRYPTION_KEYS = OLD
    device = totp_device_create(user=get_user_model().objects.create_user("rot", is_staff=True), actor=None)
    key = device.key
    session = SessionStore()
    session["x"] = 1
    session.save()
    settings.FIELD_ENCRYPTION_KEYS = f"{NEW},{OLD}"
    run()
    settings.FIELD_ENCRYPTION_KEYS = NEW
    assert set(stored_kids()) == {"new"}
    rotated = EncryptedTOTPDevice.objects.get(pk=device.pk)
    assert rotated.key == key
    assert rotated.verify_token(TOTP(bytes.fromhex(key)).token())
    assert SessionStore(session.session_key).load() == {"x": 1}
