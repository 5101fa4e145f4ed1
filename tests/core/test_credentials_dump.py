"""A database dump holds no credential anyone could use: not after failed logins, not after a demo run.

Failed logins (the admin's two-factor form and the resident login) leave django-axes lockout
rows; after a full demo run (`seed_demo`, an admin login with TOTP, one with a backup code, new
backup codes, a lockout, a resident login with an OAuth2 token and its refresh) `pg_dump` of the
suite's PostgreSQL must hold none of the passwords typed (right or wrong), TOTP secrets, backup
codes, session keys from the cookies, authorisation codes, access or refresh tokens.
"""

import base64
import hashlib
import json
import re
import secrets

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client

from tests.admin.conftest import PASSWORD, staff_user, totp_device
from tests.demo_database import pg_dump, seed_demo_database

WRONG = "Tr0ub4dor&3-not-the-password"


def spellings(secret: str) -> set[str]:
    """A secret as typed, in either case, and (for a base32 TOTP secret) as hex and base64."""
    found = {secret, secret.upper(), secret.lower()}
    if re.fullmatch(r"[A-Z2-7]{16,}", secret):
        raw = base64.b32decode(secret + "=" * (-len(secret) % 8))
        found |= {raw.hex(), raw.hex().upper(), base64.b64encode(raw).decode().rstrip("=")}
    return {value for value in found if len(value) >= 6}


def leaks(dump: str, secrets_: list[str]) -> list[str]:
    return sorted({secret for secret in secrets_ for spelling in spellings(secret) if spelling in dump})


def test_the_leak_detector_finds_each_kind_of_credential():
    hex_key = secrets.token_hex(20)
    b32 = base64.b32encode(bytes.fromhex(hex_key)).decode().rstrip("=")
    for secret, line in ((b32, f"7\t{hex_key}\tdefault"), ("abcd2345", "9\tABCD2345"), (PASSWORD, f"x={PASSWORD}")):
        assert leaks(line, [secret]) == [secret], secret


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_failed_logins_leave_no_password_in_a_dump(postgres_server):
    """Five wrong passwords and then the right one (refused: locked out), at both login forms."""
    staff = staff_user("pm-dump", superuser=True)
    totp_device(staff)
    get_user_model().objects.create_user("resident-dump", password=PASSWORD)
    admin, app = Client(), Client()
    typed = [f"{WRONG}-{n}" for n in range(settings.AXES_FAILURE_LIMIT)]
    for password in typed:
        admin.post("/account/login/", {"login_view-current_step": "auth", "auth-username": "pm-dump",
                                       "auth-password": password})
        app.post("/accounts/login/", {"username": "resident-dump", "password": password})
    locked = admin.post("/account/login/", {"login_view-current_step": "auth", "auth-username": "pm-dump",
                                            "auth-password": PASSWORD})
    assert locked.status_code == 429
    assert app.post("/accounts/login/", {"username": "resident-dump", "password": PASSWORD}).status_code == 429

    dump = pg_dump(postgres_server, connection.settings_dict["NAME"])
    assert "COPY public.axes_accessattempt" in dump
    assert re.search(r"^\d+\t[^\n]*\tpm-dump\t", dump, re.MULTILINE)  # the lockout rows are in the dump
    assert leaks(dump, [PASSWORD, *typed]) == []


SEED_STAFF = re.compile(
    r"^  (?P<username>\w+) +\((?P<role>[^)]+)\)  password: (?P<password>\S+)\n"
    r" +TOTP secret \(base32\): (?P<totp_secret>[A-Z2-7]+)\n"
    r" +otpauth URI: \S+\n"
    r" +backup codes: (?P<backup_codes>[a-z2-7 ]+)$",
    re.MULTILINE,
)
SEED_RESIDENT = re.compile(r"^  (?P<username>resident\d+) +password: (?P<password>\S+)$", re.MULTILINE)


@pytest.mark.postgres
@pytest.mark.slow
def test_a_dump_after_a_demo_run_holds_no_usable_credential(scratch_database, postgres_server, tmp_path):
    demo = seed_demo_database(url=scratch_database, postgres_server=postgres_server, var_dir=tmp_path)
    seeded = demo.seed_output
    staff = {m["username"]: {**m.groupdict(), "backup_codes": m["backup_codes"].split()}
             for m in SEED_STAFF.finditer(seeded)}
    resident = SEED_RESIDENT.search(seeded).groupdict()
    assert set(staff) == {"manager", "compliance", "security"}
    assert all(len(entry["backup_codes"]) == 5 for entry in staff.values())

    logins = json.dumps({"staff": staff, "resident": resident})
    used = json.loads(demo.run("-m", "tests.core.demo_logins", stdin=logins))
    dump = demo.dump()

    typed_or_issued = [
        *(entry[name] for entry in staff.values() for name in ("password", "totp_secret")),
        *(code for entry in staff.values() for code in entry["backup_codes"]),
        resident["password"],
        *used["secrets"],
    ]
    assert "УК Северный квартал" in dump  # the demo's dump, personal data encrypted as before
    assert leaks(dump, typed_or_issued) == []

    # ... and it is the dump after the logins: the three TOTP devices (encrypted with the field
    # keyring), the backup codes (digests), and each live session under the SHA-256 of the key its
    # cookie carries.
    assert len(re.findall(r"v1:k1:[A-Za-z0-9_-]{40,}", dump)) >= 20 * 3 + 16 + 3
    assert "COPY public.core_encryptedtotpdevice" in dump
    assert "COPY public.otp_static_statictoken" in dump
    for key in used["session_keys"]:
        assert hashlib.sha256(key.encode()).hexdigest() in dump
