"""Binding column-bound values of the first format to their rows: the helper, then the real migrations.

The helper tests run on the suite's database. The migration test seeds a scratch PostgreSQL
database at the schema before row keys (access 0006, partners 0003) with values encrypted the
old way, interrupts the binding part-way as a killed `migrate` would, then lets the real
`manage.py migrate` finish, in subprocesses.
"""

import base64
import json
import os
import secrets
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg
import pytest
from django.db import connection

from access.models import Resident
from core.crypto.fields import column_associated_data, row_associated_data
from core.crypto.keyring import DecryptionError, Keyring, get_keyring
from core.crypto.row_binding import bind_values_to_rows
from tests import factories

ROOT = Path(__file__).resolve().parents[2]
RESIDENT_COLUMNS = ["full_name", "phone", "email"]


def raw_rows(table: str, columns: list[str]) -> dict[int, tuple]:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT id, row_key, {', '.join(columns)} FROM {table} ORDER BY id")  # noqa: S608
        return {row[0]: row[1:] for row in cursor.fetchall()}


def write_column_bound(person: Resident) -> None:
    """Store `person`'s values as the first format did: bound to the column only."""
    keyring = get_keyring()
    values = [
        keyring.encrypt(getattr(person, column), aad=column_associated_data("access_resident", column))
        for column in RESIDENT_COLUMNS
    ]
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE access_resident SET full_name = %s, phone = %s, email = %s WHERE id = %s", [*values, person.pk]
        )


@pytest.fixture
def old_format_residents():
    people = [factories.resident() for _ in range(5)]
    for person in people:
        write_column_bound(person)
    with pytest.raises(DecryptionError):
        Resident.objects.get(pk=people[0].pk)
    return {person.pk: tuple(getattr(person, c) for c in RESIDENT_COLUMNS) for person in people}


@pytest.mark.django_db
def test_binding_is_resumable_and_idempotent(old_format_residents):
    changed, finished = bind_values_to_rows(
        connection, table="access_resident", columns=RESIDENT_COLUMNS, batch_size=2, max_batches=1
    )
    assert (changed, finished) == (2 * 3, False)  # stopped after one batch, as if killed
    first = raw_rows("access_resident", RESIDENT_COLUMNS)
    first_two = sorted(old_format_residents)[:2]

    changed, finished = bind_values_to_rows(connection, table="access_resident", columns=RESIDENT_COLUMNS)
    assert (changed, finished) == (3 * 3, True)  # the rest, and not the two rows already bound
    second = raw_rows("access_resident", RESIDENT_COLUMNS)
    assert all(second[pk] == first[pk] for pk in first_two)

    assert bind_values_to_rows(connection, table="access_resident", columns=RESIDENT_COLUMNS) == (0, True)
    assert raw_rows("access_resident", RESIDENT_COLUMNS) == second
    assert {
        person.pk: tuple(getattr(person, c) for c in RESIDENT_COLUMNS) for person in Resident.objects.all()
    } == old_format_residents


@pytest.mark.django_db
def test_unbinding_is_the_reverse(old_format_residents):
    bind_values_to_rows(connection, table="access_resident", columns=RESIDENT_COLUMNS)
    assert bind_values_to_rows(connection, table="access_resident", columns=RESIDENT_COLUMNS, unbind=True) == (
        5 * 3, True,
    )
    keyring = get_keyring()
    for _, *values in raw_rows("access_resident", RESIDENT_COLUMNS).values():
        for column, value in zip(RESIDENT_COLUMNS, values, strict=True):
            keyring.decrypt(value, aad=column_associated_data("access_resident", column))


@pytest.mark.django_db
def test_a_value_bound_to_neither_form_stops_the_binding_and_its_batch_changes_nothing(old_format_residents):
    first = sorted(old_format_residents)[1]
    with connection.cursor() as cursor:  # another column's value: decrypts under neither form here
        cursor.execute("UPDATE access_resident SET phone = email WHERE id = %s", [first])
    before = raw_rows("access_resident", RESIDENT_COLUMNS)
    with pytest.raises(DecryptionError, match=rf"access_resident\.phone row {first}: authentication failed"):
        bind_values_to_rows(connection, table="access_resident", columns=RESIDENT_COLUMNS)
    assert raw_rows("access_resident", RESIDENT_COLUMNS) == before


# --- the migrations, for real ---------------------------------------------------------------

KEYS = "k1:" + base64.b64encode(secrets.token_bytes(32)).decode()
PEOPLE = [("Иванов Иван", "+7 916 000-00-01", "ivanov@example.ru", "A001AA77"),
          ("Петрова Анна", "+7 916 000-00-02", "petrova@example.ru", "B002BB77"),
          ("Сидоров Олег", "+7 916 000-00-03", "", "E003EE116")]
SECRETS = {"client_secret": "client-secret", "plate_token_key": "cGxhdGU=", "subject_key": "c3ViamVjdA==",
           "webhook_secret": "whsec_d2ViaG9vaw=="}


def manage(database_url: str, tmp_path: Path, *args: str) -> str:
    env = {
        **{k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")},
        "DJANGO_SETTINGS_MODULE": "smarthome.settings",
        "DATABASE_URL": database_url,
        "CACHE_URL": "locmemcache://",
        "SMARTHOME_VAR_DIR": str(tmp_path),
        "FIELD_ENCRYPTION_KEYS": KEYS,
    }
    result = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def shell(database_url: str, tmp_path: Path, script: str) -> str:
    return manage(database_url, tmp_path, "shell", "--no-imports", "-c", script)


def seed_old_rows(dsn: str) -> None:
    """Rows as the first format wrote them, at access 0006 / partners 0003 (no row_key yet)."""
    keyring = Keyring.parse(KEYS)

    def sealed(table, column, value):
        return keyring.encrypt(value, aad=column_associated_data(table, column))

    with psycopg.connect(dsn, autocommit=True) as db:
        company = db.execute(
            "INSERT INTO access_managementcompany (name, created_at) VALUES ('УК', now()) RETURNING id"
        ).fetchone()[0]
        building = db.execute(
            "INSERT INTO access_building (company_id, name, address, timezone, created_at) "
            "VALUES (%s, 'Дом', 'ул. Полярная', 'Europe/Moscow', now()) RETURNING id", [company]
        ).fetchone()[0]
        partner = db.execute(
            "INSERT INTO partners_partner (name, slug, api_base_url, audit_log_url, active, created_at, server_ca_pem) "
            "VALUES ('P', 'p', 'https://p.invalid', '', true, now(), '') RETURNING id"
        ).fetchone()[0]
        db.execute(
            "INSERT INTO partners_partnercredentials (partner_id, version, client_id, client_secret, client_cert_pem,"
            " client_cert_fingerprint, partner_public_key_pem, plate_token_key, subject_key, webhook_secret,"
            " allowed_cidrs, created_at) VALUES (%s, 1, 'c', %s, '', '', '', %s, %s, %s, '[]', now())",
            [partner, *(sealed("partners_partnercredentials", c, v) for c, v in SECRETS.items())],
        )
        device = db.execute(
            "INSERT INTO access_device (building_id, kind, name, partner_id, partner_device_ref, online) "
            "VALUES (%s, 'barrier', 'Шлагбаум', %s, 'b1', true) RETURNING id", [building, partner]
        ).fetchone()[0]
        for index, (name, phone, email, plate) in enumerate(PEOPLE):
            user = db.execute(
                "INSERT INTO auth_user (password, is_superuser, username, first_name, last_name, email, is_staff,"
                " is_active, date_joined) VALUES ('!', false, %s, '', '', '', false, true, now()) RETURNING id",
                [f"u{index}"],
            ).fetchone()[0]
            resident = db.execute(
                "INSERT INTO access_resident (user_id, company_id, full_name, phone, email, suspended, created_at) "
                "VALUES (%s, %s, %s, %s, %s, false, now()) RETURNING id",
                [user, company, *(sealed("access_resident", c, v)
                                  for c, v in (("full_name", name), ("phone", phone), ("email", email)))],
            ).fetchone()[0]
            db.execute(
                "INSERT INTO access_vehicle (resident_id, plate, label, created_at) VALUES (%s, %s, '', now())",
                [resident, sealed("access_vehicle", "plate", plate)],
            )
            db.execute(
                "INSERT INTO access_guestpass (resident_id, device_id, plate, plate_token, label, valid_from,"
                " valid_until, one_time, created_at) VALUES (%s, %s, %s, 't', '', now(),"
                " now() + interval '1 day', false, now())",
                [resident, device, sealed("access_guestpass", "plate", plate)],
            )


ENCRYPTED = {
    "access_resident": ["full_name", "phone", "email"],
    "access_vehicle": ["plate"],
    "access_guestpass": ["plate"],
    "partners_partnercredentials": [*SECRETS, "outbound_webhook_secret"],
}


def stored(dsn: str, *, with_row_key: bool = True, tables: dict | None = None) -> dict[tuple, str]:
    """{(table, id, column): stored value} and, with row keys, {(table, id): row key}."""
    found: dict[tuple, str] = {}
    with psycopg.connect(dsn) as db:
        for table, columns in (tables or ENCRYPTED).items():
            key = "row_key" if with_row_key else "NULL"
            for row_id, row_key, *values in db.execute(f"SELECT id, {key}, {', '.join(columns)} FROM {table}"):  # noqa: S608
                found[(table, row_id)] = row_key
                for column, value in zip(columns, values, strict=True):
                    found[(table, row_id, column)] = value
    return found


def decrypt_all(values: dict[tuple, str], *, bound: bool) -> dict[tuple, str]:
    keyring = Keyring.parse(KEYS)
    plain = {}
    for key, value in values.items():
        if len(key) == 3:
            table, row_id, column = key
            aad = (row_associated_data(table, column, values[(table, row_id)]) if bound
                   else column_associated_data(table, column))
            plain[key] = keyring.decrypt(value, aad=aad)
    return plain


@pytest.mark.postgres
@pytest.mark.slow
def test_the_migrations_bind_old_values_to_their_rows_and_resume_after_an_interruption(scratch_database, tmp_path):
    dsn = url = scratch_database  # libpq takes the URL as it is
    manage(url, tmp_path, "migrate", "access", "0006_security_alert_resolution", "--no-input", "-v", "0")
    seed_old_rows(dsn)
    before_0004 = {**ENCRYPTED, "partners_partnercredentials": list(SECRETS)}
    old = decrypt_all(stored(dsn, with_row_key=False, tables=before_0004), bound=False)

    # partners 0004 fills the new column's existing rows with one column-bound default; then the
    # row-key columns, and a binding killed after one batch of two residents
    shell(url, tmp_path, "\n".join([
        "from django.core.management import call_command",
        "from django.db import connection",
        "from core.crypto.row_binding import bind_values_to_rows, fill_row_keys",
        "call_command('migrate', 'partners', '0005_row_key_column', verbosity=0)",
        "call_command('migrate', 'access', '0007_row_key_column', verbosity=0)",
        "fill_row_keys(connection, table='access_resident')",
        "bind_values_to_rows(connection, table='access_resident', columns=['full_name', 'phone', 'email'],"
        " batch_size=2, max_batches=1)",
    ]))
    interrupted = stored(dsn)
    first_two = sorted(row_id for (table, row_id, *rest) in interrupted if table == "access_resident" and not rest)[:2]
    assert decrypt_all({k: v for k, v in interrupted.items() if k[:2] in {("access_resident", i) for i in first_two}},
                       bound=True)

    manage(url, tmp_path, "migrate", "--no-input", "-v", "0")
    after = stored(dsn)
    plain = decrypt_all(after, bound=True)  # every value decrypts under its row's associated data
    assert {k: v for k, v in plain.items() if k in old} == old
    assert plain[("partners_partnercredentials", 1, "outbound_webhook_secret")] == ""
    for key in (k for k in after if k[0] == "access_resident" and k[1] in first_two and len(k) == 3):
        assert after[key] == interrupted[key]  # bound before the interruption: left alone
    assert len({after[k] for k in after if len(k) == 2}) == len([k for k in after if len(k) == 2])  # unique keys
    keyring = Keyring.parse(KEYS)
    for key, value in after.items():
        if len(key) == 3:
            with pytest.raises(DecryptionError):
                keyring.decrypt(value, aad=column_associated_data(key[0], key[2]))

    # the application reads them; a second binding changes nothing; migrating back unbinds
    report = json.loads(shell(url, tmp_path, "\n".join([
        "import json",
        "from django.db import connection",
        "from access.models import Resident",
        "from partners.models import PartnerCredentials",
        "from core.crypto.row_binding import bind_values_to_rows",
        "again = bind_values_to_rows(connection, table='access_resident', columns=['full_name', 'phone', 'email'])",
        "print(json.dumps({'people': sorted([r.full_name, r.phone, r.email, r.vehicles.get().plate]"
        " for r in Resident.objects.all()), 'webhook': PartnerCredentials.objects.get().webhook_secret,"
        " 'again': again}))",
    ])))
    assert report == {"people": sorted(list(p) for p in PEOPLE), "webhook": SECRETS["webhook_secret"],
                      "again": [0, True]}
    assert stored(dsn) == after

    manage(url, tmp_path, "migrate", "access", "0006_security_alert_resolution", "-v", "0")
    manage(url, tmp_path, "migrate", "partners", "0004_outbound_webhook_secret", "-v", "0")
    assert decrypt_all(stored(dsn, with_row_key=False), bound=False) == plain


def test_row_keys_are_uuids_in_the_associated_data():
    key = uuid.uuid4()
    assert row_associated_data("t", "c", key) == row_associated_data("t", "c", str(key)) == (
        f"t.c@{key.hex}".encode()
    )
    assert row_associated_data("t", "c", key.hex) == f"t.c@{key.hex}".encode()
