"""The compliance export: API, filters, company isolation, and offline proof (both verifiers)."""

import base64
import csv
import datetime
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.core.management import call_command
from django.utils import timezone
from rest_framework.test import APIClient

from audit import signing
from audit.actions import Action, Outcome
from audit.export import export_stream
from audit.models import AuditEvent
from audit.sealing import audit_seal
from audit.selectors import EventFilter, checkpoint_latest
from audit.services import record
from audit.verification import verify_export

pytestmark = pytest.mark.django_db
SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "verify_audit_export.py"
URL = "/api/v1/audit/export"


@pytest.fixture
def log():
    """30 events over companies 1 and 2, buildings, partners, actions and outcomes; 3 left unsealed."""
    made = []
    for i in range(27):
        made.append(record(
            action=[Action.PARTNER_OPEN, Action.ACCESS_DECISION, Action.CONSENT_GIVE][i % 3],
            outcome=[Outcome.SUCCESS, Outcome.DENIED][i % 2],
            company_id=1 + (i % 2), building_id=10 + (i % 4), partner_id=100 + (i % 3),
            request_id=f"req-{i}", latency_ms=i / 7,
        ))
    record(action=Action.PARTNER_OPEN, outcome=Outcome.SUCCESS)  # no company: superusers only
    return made


def client_for(user) -> APIClient:
    client = APIClient()
    client.force_login(user)
    return client


def rows_of(body: str, fmt: str) -> list[dict]:
    if fmt == "jsonl":
        return [json.loads(line) for line in body.splitlines()[:-1]]
    reader = list(csv.reader(io.StringIO(body)))
    return [dict(zip(reader[0], r, strict=True)) for r in reader[1:-1]]


def export(user, fmt="jsonl", **params) -> str:
    response = client_for(user).get(URL, {"format": fmt, **params})
    assert response.status_code == 200, response.content
    return b"".join(response.streaming_content).decode()


def run_script(body: str, tmp_path, suffix: str) -> subprocess.CompletedProcess:
    path = tmp_path / f"export.{suffix}"
    path.write_text(body)
    key = tmp_path / "key.pem"
    key.write_text(signing.public_key_pem())
    return subprocess.run([sys.executable, str(SCRIPT), str(path), "--public-key", str(key)],
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_export_is_company_scoped_and_verifies_offline(fmt, log, make_staff, tmp_path, capsys):
    officer = make_staff("officer1", companies={1})
    body = export(officer, fmt)
    rows = rows_of(body, fmt)
    assert {r["company_id"] for r in rows} == {"1"}
    assert len(rows) == 14
    assert all(r["position"] != "" for r in rows)  # the export sealed first
    report = verify_export(body)
    assert report.ok, report.problems
    assert report.sealed_rows == 14
    assert run_script(body, tmp_path, fmt).returncode == 0
    call_command("verify_audit_export", str(tmp_path / f"export.{fmt}"))
    assert "export OK" in capsys.readouterr().out
    exported = AuditEvent.objects.get(action=Action.AUDIT_EXPORTED)
    assert exported.reason == f"format.{fmt}"


def test_superuser_sees_every_company_and_the_full_export_needs_no_proof_hashes(log, make_staff):
    root = make_staff("root", companies=set(), superuser=True)
    body = export(root)
    trailer = json.loads(body.splitlines()[-1])
    # the log's 28 events and the exporter's own sign-in (auth.login, no company: superusers see it)
    assert trailer["rows"]["sealed"] == 29 == trailer["checkpoint"]["tree_size"]
    assert [row["action"] for row in rows_of(body, "jsonl")].count("auth.login") == 1
    assert trailer["proof"]["hashes"] == []
    assert verify_export(body).ok


@pytest.mark.parametrize(
    ("params", "predicate"),
    [
        ({"building": 10}, lambda e: e.building_id == 10),
        ({"partner": 101}, lambda e: e.partner_id == 101),
        ({"action": "access.decision"}, lambda e: e.action == "access.decision"),
        ({"outcome": "denied"}, lambda e: e.outcome == "denied"),
        ({"building": 11, "outcome": "denied"}, lambda e: e.building_id == 11 and e.outcome == "denied"),
    ],
)
def test_export_filters(params, predicate, log, make_staff, tmp_path):
    officer = make_staff("officer2", companies={1, 2})
    body = export(officer, "csv", **params)
    got = sorted(int(r["id"]) for r in rows_of(body, "csv"))
    expected = sorted(e.pk for e in log if predicate(e))
    assert got == expected
    assert got
    assert verify_export(body).ok
    assert run_script(body, tmp_path, "csv").returncode == 0


def test_export_time_window(log, make_staff):
    officer = make_staff("officer3", companies={1, 2})
    moment = log[10].occurred_at
    body = export(officer, **{"from": moment.isoformat(), "to": (moment + datetime.timedelta(hours=1)).isoformat()})
    ids = [int(r["id"]) for r in rows_of(body, "jsonl")]
    assert ids == [e.pk for e in log[10:]]
    assert verify_export(body).ok


def test_rows_after_the_checkpoint_are_marked_unsealed(log, make_staff, tmp_path):
    audit_seal()
    late = record(action=Action.PARTNER_OPEN, outcome=Outcome.SUCCESS, company_id=1)
    body = b"".join(export_stream(event_filter=EventFilter(company_ids=frozenset({1})), fmt="jsonl",
                                  checkpoint=checkpoint_latest())).decode()
    rows = rows_of(body, "jsonl")
    assert rows[-1]["id"] == str(late.pk)
    assert rows[-1]["position"] == ""
    report = verify_export(body)
    assert report.ok
    assert report.unsealed_rows == 1
    assert run_script(body, tmp_path, "jsonl").returncode == 0


def _tamper_row(body: str, fmt: str, how: str) -> str:
    lines = body.splitlines(keepends=True)
    first_row = 1 if fmt == "csv" else 0
    i = first_row + 2
    if how == "alter":
        lines[i] = lines[i].replace("denied", "success") if "denied" in lines[i] else lines[i].replace(
            "success", "denied")
    elif how == "delete":
        del lines[i]
    elif how == "swap_positions":
        a, b = lines[i], lines[i + 1]
        if fmt == "jsonl":
            pa, pb = json.loads(a)["position"], json.loads(b)["position"]
            lines[i] = a.replace(f'"position": "{pa}"', f'"position": "{pb}"')
            lines[i + 1] = b.replace(f'"position": "{pb}"', f'"position": "{pa}"')
            lines[i], lines[i + 1] = lines[i + 1], lines[i]
        else:
            pa, pb = a.split(",", 1)[0], b.split(",", 1)[0]
            lines[i] = pb + "," + a.split(",", 1)[1]
            lines[i + 1] = pa + "," + b.split(",", 1)[1]
    elif how == "swap_lines":
        lines[i], lines[i + 1] = lines[i + 1], lines[i]
    elif how == "forge_checkpoint":
        trailer_line = lines[-1]
        trailer = json.loads(next(csv.reader([trailer_line]))[1]) if fmt == "csv" else json.loads(trailer_line)
        cp = trailer["checkpoint"]
        cp["root_hash"] = "cd" * 32
        forger = Ed25519PrivateKey.generate()
        message = signing.checkpoint_message(cp["tree_size"], cp["root_hash"], cp["signed_at"])
        cp["signature"] = base64.b64encode(forger.sign(message)).decode()
        if fmt == "csv":
            out = io.StringIO()
            csv.writer(out, lineterminator="\n").writerow(["#proof", json.dumps(trailer)])
            lines[-1] = out.getvalue()
        else:
            lines[-1] = json.dumps(trailer) + "\n"
    return "".join(lines)


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
@pytest.mark.parametrize("how", ["alter", "delete", "swap_positions", "swap_lines", "forge_checkpoint"])
def test_tampered_exports_fail_both_verifiers(fmt, how, log, make_staff, tmp_path):
    officer = make_staff("officer4", companies={1, 2})
    body = export(officer, fmt, partner=100)
    assert verify_export(body).ok
    forged = _tamper_row(body, fmt, how)
    assert forged != body
    report = verify_export(forged)
    assert not report.ok
    result = run_script(forged, tmp_path, fmt)
    assert result.returncode == 1
    assert "FAILED" in result.stderr


def test_verifier_refuses_a_file_signed_by_another_key(log, make_staff):
    body = export(make_staff("officer5", companies={1}))
    other = signing.public_key_pem(Ed25519PrivateKey.generate().public_key())
    report = verify_export(body, other)
    assert not report.ok


def test_export_after_pruning_still_verifies(log, make_staff, tmp_path):
    from tests.audit.conftest import tamper

    audit_seal()
    tamper("DELETE FROM audit_event WHERE id IN (%s, %s)", [log[0].pk, log[2].pk])
    from audit.models import AuditPrune

    AuditPrune.objects.create(below_position=3, cutoff=timezone.now(), deleted=2)
    body = export(make_staff("officer6", companies={1}))
    assert verify_export(body).ok
    assert run_script(body, tmp_path, "jsonl").returncode == 0


def test_only_compliance_officers_may_export(log, make_staff):
    manager = make_staff("manager", companies={1}, compliance=False)
    response = client_for(manager).get(URL)
    assert response.status_code == 403
    assert response["Content-Type"] == "application/problem+json"
    assert not AuditEvent.objects.filter(action=Action.AUDIT_EXPORTED).exists()
    assert APIClient().get(URL).status_code == 401


@pytest.mark.parametrize(
    ("params", "field"),
    [({"format": "xml"}, "format"), ({"from": "yesterday"}, "from"), ({"building": "x"}, "building"),
     ({"action": "drop.table"}, "action"), ({"outcome": "meh"}, "outcome"),
     ({"from": "2026-01-02T00:00:00Z", "to": "2026-01-01T00:00:00Z"}, "to")],
)
def test_bad_filters_are_400_with_field_errors(params, field, make_staff):
    response = client_for(make_staff("officer7", companies={1})).get(URL, params)
    assert response.status_code == 400
    assert field in {e["field"] for e in response.json()["errors"]}
    assert not AuditEvent.objects.filter(action=Action.AUDIT_EXPORTED).exists()


def test_public_key_is_published_without_auth():
    response = APIClient().get("/api/v1/audit/public-key")
    assert response.status_code == 200
    body = response.json()
    key = signing.load_public_key_pem(body["public_key_pem"])
    assert body["key_id"] == signing.key_id(key) == signing.key_id(signing.public_key())


def test_a_row_deleted_in_the_database_makes_the_export_fail_verification(log, make_staff, tmp_path):
    from tests.audit.conftest import tamper

    audit_seal()
    tamper("DELETE FROM audit_event WHERE id = %s", [log[4].pk])
    body = export(make_staff("officer8", companies={1, 2}))
    trailer = json.loads(body.splitlines()[-1])
    assert trailer["missing_rows"] == [4]
    assert not verify_export(body).ok
    result = run_script(body, tmp_path, "jsonl")
    assert result.returncode == 1
    assert "deleted" in result.stderr
