"""AES-256-GCM field encryption: round trip, and every way a value must fail to decrypt."""

import base64
import os
import stat

import pytest
from django.db import connection, transaction

from access.models import Resident, Vehicle
from core.crypto.fields import EncryptedFieldLookupError, EncryptedFieldWriteError
from core.crypto.keyring import DecryptionError, Keyring, KeyringError, envelope_kid, get_keyring
from tests import factories

KEY_A = base64.b64encode(b"A" * 32).decode()
KEY_B = base64.b64encode(b"B" * 32).decode()
AAD = b"access_resident.phone"


def raw_column(model, pk, column):
    table = model._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {column} FROM {table} WHERE id = %s", [pk])  # noqa: S608 - test, fixed names
        return cursor.fetchone()[0]


def set_raw_column(model, pk, column, value):
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {model._meta.db_table} SET {column} = %s WHERE id = %s", [value, pk])  # noqa: S608


# --- the keyring ---------------------------------------------------------------------------


def test_round_trip_and_envelope_format():
    keyring = Keyring.parse(f"a:{KEY_A},b:{KEY_B}")
    envelope = keyring.encrypt("+7 916 123-45-67", aad=AAD)
    assert envelope.startswith("v1:a:")
    assert envelope_kid(envelope) == "a"
    assert "+7" not in envelope
    assert keyring.decrypt(envelope, aad=AAD) == "+7 916 123-45-67"
    # a fresh nonce each time: equal values do not give equal ciphertexts
    assert keyring.encrypt("+7 916 123-45-67", aad=AAD) != envelope
    assert keyring.decrypt(keyring.encrypt("", aad=AAD), aad=AAD) == ""
    assert keyring.decrypt(keyring.encrypt("Ёжиков Пётр", aad=AAD), aad=AAD) == "Ёжиков Пётр"


def test_any_key_of_the_ring_decrypts_the_first_encrypts():
    old = Keyring.parse(f"a:{KEY_A}")
    both = Keyring.parse(f"b:{KEY_B},a:{KEY_A}")
    assert both.primary_kid == "b"
    assert both.decrypt(old.encrypt("x", aad=AAD), aad=AAD) == "x"
    assert envelope_kid(both.encrypt("x", aad=AAD)) == "b"


def test_wrong_key_is_rejected():
    envelope = Keyring.parse(f"a:{KEY_A}").encrypt("secret", aad=AAD)
    impostor = Keyring.parse(f"a:{KEY_B}")  # same kid, another key
    with pytest.raises(DecryptionError, match="authentication failed"):
        impostor.decrypt(envelope, aad=AAD)


def test_unknown_kid_is_rejected():
    envelope = Keyring.parse(f"a:{KEY_A}").encrypt("secret", aad=AAD)
    with pytest.raises(DecryptionError, match=r"key id 'a'.*not in the keyring"):
        Keyring.parse(f"b:{KEY_B}").decrypt(envelope, aad=AAD)


@pytest.mark.parametrize("position", [0, 5, 12, 20, -1])
def test_tampered_ciphertext_is_rejected(position):
    keyring = Keyring.parse(f"a:{KEY_A}")
    envelope = keyring.encrypt("+7 916 123-45-67", aad=AAD)
    prefix, body = envelope.rsplit(":", 1)
    raw = bytearray(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    raw[position] ^= 0x01
    tampered = prefix + ":" + base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()
    with pytest.raises(DecryptionError):
        keyring.decrypt(tampered, aad=AAD)


def test_other_column_associated_data_is_rejected():
    keyring = Keyring.parse(f"a:{KEY_A}")
    envelope = keyring.encrypt("+7 916 123-45-67", aad=b"access_resident.phone")
    with pytest.raises(DecryptionError, match=r"another column than access_resident\.email"):
        keyring.decrypt(envelope, aad=b"access_resident.email")


@pytest.mark.parametrize("stored", ["+7 916 123-45-67", "v1:a", "v2:a:AAAA", "v1:a:short", "v1:a:%%%%", "v1::AAAA"])
def test_plaintext_or_garbage_is_never_returned(stored):
    with pytest.raises(DecryptionError):
        Keyring.parse(f"a:{KEY_A}").decrypt(stored, aad=AAD)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "empty"),
        ("a", "kid:base64key"),
        (f"bad kid!:{KEY_A}", "kid:base64key"),
        ("a:not-base64!", "not valid base64"),
        (f"a:{base64.b64encode(b'x' * 16).decode()}", "32 bytes"),
        (f"a:{KEY_A},a:{KEY_B}", "twice"),
    ],
)
def test_malformed_keyring_is_refused(spec, message):
    with pytest.raises(KeyringError, match=message):
        Keyring.parse(spec)


def test_dev_key_file_is_created_once_with_mode_0600(settings, tmp_path):
    settings.FIELD_ENCRYPTION_KEYS = ""
    settings.FIELD_ENCRYPTION_KEY_FILE = str(tmp_path / "var" / "field-keys")
    first = get_keyring()
    path = tmp_path / "var" / "field-keys"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    settings.FIELD_ENCRYPTION_KEY_FILE = str(path)  # re-read from the file
    assert get_keyring() is not first
    assert get_keyring().keys == first.keys


def test_no_keys_and_no_dev_file_refuses(settings):
    settings.FIELD_ENCRYPTION_KEYS = ""
    settings.FIELD_ENCRYPTION_KEY_FILE = ""
    with pytest.raises(KeyringError, match="FIELD_ENCRYPTION_KEYS is not set"):
        get_keyring()


# --- the model fields ----------------------------------------------------------------------


@pytest.mark.django_db
def test_model_round_trip_and_no_plaintext_in_the_column(settings):
    settings.FIELD_ENCRYPTION_KEYS = f"a:{KEY_A}"
    resident = factories.resident(full_name="Иванов Алексей Сергеевич", phone="+7 916 123-45-67",
                                  email="a.ivanov@example.ru")
    vehicle = factories.vehicle(resident_=resident, plate="а123вс 77")
    fresh = Resident.objects.get(pk=resident.pk)
    assert (fresh.full_name, fresh.phone, fresh.email) == (
        "Иванов Алексей Сергеевич", "+7 916 123-45-67", "a.ivanov@example.ru"
    )
    assert Vehicle.objects.get(pk=vehicle.pk).plate == "A123BC77"
    assert list(Resident.objects.filter(pk=resident.pk).values_list("phone", flat=True)) == ["+7 916 123-45-67"]
    for column, plain in (("full_name", "Иванов"), ("phone", "123-45-67"), ("email", "ivanov")):
        stored = raw_column(Resident, resident.pk, column)
        assert stored.startswith("v1:a:")
        assert plain not in stored
    assert raw_column(Vehicle, vehicle.pk, "plate").startswith("v1:a:")
    assert str(fresh) == f"Resident #{resident.pk}"


@pytest.mark.django_db
def test_model_value_under_a_wrong_key_raises(settings):
    settings.FIELD_ENCRYPTION_KEYS = f"a:{KEY_A}"
    resident = factories.resident()
    settings.FIELD_ENCRYPTION_KEYS = f"a:{KEY_B}"
    with pytest.raises(DecryptionError, match="authentication failed"):
        Resident.objects.get(pk=resident.pk)


@pytest.mark.django_db
def test_model_value_under_an_unknown_kid_raises(settings):
    settings.FIELD_ENCRYPTION_KEYS = f"a:{KEY_A}"
    resident = factories.resident()
    settings.FIELD_ENCRYPTION_KEYS = f"b:{KEY_B}"
    with pytest.raises(DecryptionError, match="not in the keyring"):
        Resident.objects.get(pk=resident.pk)


@pytest.mark.django_db
def test_tampered_column_raises():
    resident = factories.resident()
    stored = raw_column(Resident, resident.pk, "phone")
    flipped = stored[:-2] + ("A" if stored[-2] != "A" else "B") + stored[-1]
    set_raw_column(Resident, resident.pk, "phone", flipped)
    with pytest.raises(DecryptionError):
        Resident.objects.get(pk=resident.pk)


@pytest.mark.django_db
def test_ciphertext_swapped_between_columns_raises():
    resident = factories.resident()
    set_raw_column(Resident, resident.pk, "email", raw_column(Resident, resident.pk, "phone"))
    with pytest.raises(DecryptionError, match=r"access_resident\.email"):
        Resident.objects.get(pk=resident.pk)


@pytest.mark.django_db
def test_ciphertext_copied_to_another_table_raises():
    resident = factories.resident()
    vehicle = factories.vehicle(resident_=resident)
    set_raw_column(Vehicle, vehicle.pk, "plate", raw_column(Resident, resident.pk, "phone"))
    with pytest.raises(DecryptionError, match=r"access_vehicle\.plate"):
        Vehicle.objects.get(pk=vehicle.pk)


@pytest.mark.django_db
def test_plaintext_written_behind_our_back_is_not_returned():
    resident = factories.resident()
    set_raw_column(Resident, resident.pk, "phone", "+7 916 000-00-00")
    with pytest.raises(DecryptionError, match="not an encrypted envelope"):
        Resident.objects.get(pk=resident.pk)


@pytest.mark.django_db
@pytest.mark.parametrize(
    "lookup",
    [
        {"phone": "+7 916 123-45-67"},
        {"phone__exact": "x"},
        {"phone__iexact": "x"},
        {"full_name__icontains": "Иван"},
        {"email__startswith": "a"},
        {"phone__in": ["x"]},
        {"email__gt": "a"},
        {"full_name__regex": "."},
        {"email__lower": "a"},
    ],
)
def test_lookups_on_encrypted_fields_are_refused(lookup):
    factories.resident()
    with pytest.raises(EncryptedFieldLookupError, match="encrypted at rest"):
        list(Resident.objects.filter(**lookup))


@pytest.mark.django_db
def test_isnull_lookup_is_allowed():
    factories.resident()
    assert Resident.objects.filter(phone__isnull=False).count() == 1
    assert Resident.objects.filter(email__isnull=True).count() == 0


@pytest.mark.django_db
def test_max_length_applies_to_the_plain_value():
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError) as caught:
        factories.resident(phone="9" * 33)
    assert "phone" in caught.value.message_dict


# --- bound to the row ------------------------------------------------------------------------


def row_key(model, pk):
    return raw_column(model, pk, "row_key")


@pytest.mark.django_db
@pytest.mark.parametrize("column", ["full_name", "phone", "email"])
def test_ciphertext_copied_to_another_row_of_the_same_column_raises(column):
    victim, attacker = factories.resident(), factories.resident(phone="+7 999 000-11-22")
    factories.vehicle(resident_=victim)
    before = raw_column(Resident, victim.pk, column)
    set_raw_column(Resident, victim.pk, column, raw_column(Resident, attacker.pk, column))
    with pytest.raises(DecryptionError, match=rf"access_resident\.{column}@"):
        Resident.objects.get(pk=victim.pk)
    with pytest.raises(DecryptionError):
        list(Resident.objects.filter(pk=victim.pk).values_list(column, flat=True))
    with pytest.raises(DecryptionError):
        list(Vehicle.objects.filter(resident=victim).values_list(f"resident__{column}", flat=True))
    # the source row still reads, and the victim's own value comes back when put back
    assert Resident.objects.get(pk=attacker.pk).phone == "+7 999 000-11-22"
    set_raw_column(Resident, victim.pk, column, before)
    assert getattr(Resident.objects.get(pk=victim.pk), column) == getattr(victim, column)


@pytest.mark.django_db
def test_plates_and_partner_secrets_are_bound_to_their_rows_too():
    first, second = factories.vehicle(plate="А111АА77"), factories.vehicle(plate="В222ВВ77")
    set_raw_column(Vehicle, second.pk, "plate", raw_column(Vehicle, first.pk, "plate"))
    with pytest.raises(DecryptionError, match=r"access_vehicle\.plate@"):
        Vehicle.objects.get(pk=second.pk)
    a, b = factories.partner(), factories.partner()
    credentials_a, credentials_b = a.credentials.get(), b.credentials.get()
    set_raw_column(type(credentials_b), credentials_b.pk, "webhook_secret",
                   raw_column(type(credentials_a), credentials_a.pk, "webhook_secret"))
    with pytest.raises(DecryptionError, match=r"partners_partnercredentials\.webhook_secret@"):
        type(credentials_b).objects.get(pk=credentials_b.pk)


@pytest.mark.django_db
def test_the_row_key_is_set_at_construction_and_differs_per_row():
    unsaved = Resident(full_name="x")
    assert unsaved.row_key is not None  # known before the INSERT (an auto-increment pk is not)
    one, two = factories.resident(), factories.resident()
    assert one.row_key != two.row_key
    assert str(Resident.objects.get(pk=one.pk).row_key) == str(one.row_key)


@pytest.mark.django_db
def test_reads_through_joins_values_and_deferred_fields_decrypt():
    person = factories.resident(full_name="Петров Пётр", phone="+7 916 555-44-33")
    car = factories.vehicle(resident_=person, plate="Е777КХ116")
    assert Vehicle.objects.select_related("resident").get(pk=car.pk).resident.phone == "+7 916 555-44-33"
    assert list(Vehicle.objects.filter(pk=car.pk).values("plate", "resident__full_name")) == [
        {"plate": "E777KX116", "resident__full_name": "Петров Пётр"}
    ]
    deferred = Resident.objects.only("id").get(pk=person.pk)
    assert deferred.email == person.email
    lean = Resident.objects.defer("row_key").get(pk=person.pk)
    assert lean.phone == "+7 916 555-44-33"
    lean.phone = "+7 916 555-44-34"
    lean.save(update_fields=["phone"])
    assert Resident.objects.get(pk=person.pk).phone == "+7 916 555-44-34"


@pytest.mark.django_db
def test_writes_without_the_row_are_refused_and_change_nothing():
    person = factories.resident(phone="+7 916 123-45-67")
    stored = raw_column(Resident, person.pk, "phone")
    with pytest.raises(EncryptedFieldWriteError, match="bound to its row"), transaction.atomic():
        Resident.objects.filter(pk=person.pk).update(phone="+7 000")
    person.phone = "+7 000"
    with pytest.raises(EncryptedFieldWriteError, match="bound to its row"), transaction.atomic():
        Resident.objects.bulk_update([person], ["phone"])
    assert raw_column(Resident, person.pk, "phone") == stored


@pytest.mark.django_db
def test_a_raw_query_without_the_row_key_is_refused():
    person = factories.resident()
    with pytest.raises(DecryptionError, match="without its row key"):
        [r.phone for r in Resident.objects.raw("SELECT id, phone FROM access_resident WHERE id = %s", [person.pk])]


def test_a_model_with_an_encrypted_field_and_no_row_key_fails_the_system_check():
    from django.db import models
    from django.test.utils import isolate_apps

    from core.crypto.fields import EncryptedTextField
    from core.crypto.models import EncryptedModel

    with isolate_apps("core"):
        class Loose(models.Model):  # noqa: DJ008
            secret = EncryptedTextField()

            class Meta:
                app_label = "core"

        class Bound(EncryptedModel):
            secret = EncryptedTextField()

            class Meta:
                app_label = "core"

        errors = Loose._meta.get_field("secret").check()
        assert [error.id for error in errors] == ["crypto.E001"]
        assert "EncryptedModel" in errors[0].hint
        assert Bound._meta.get_field("secret").check() == []


def test_every_encrypted_model_of_the_project_passes_the_row_key_check():
    from core.crypto.fields import encrypted_fields

    found = {model._meta.label for model, _ in encrypted_fields()}
    assert {"access.Resident", "access.Vehicle", "access.GuestPass", "partners.PartnerCredentials"} <= found
    for _, field in encrypted_fields():
        assert field.check() == []
