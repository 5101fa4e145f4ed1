"""The compliance export: API, filters, company isolation, per-log ranges and offline proof (both
verifiers), and what an attacker who rebuilds the trailer can and cannot get past them."""

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
from audit.canonical import FIELDS, event_leaf_hash
from audit.export import export_plan, export_stream
from audit.merkle import PositionRuns, multiproof
from audit.models import AuditEvent, AuditLog
from audit.sealing import audit_seal
from audit.selectors import EventFilter, leaf_hashes
from audit.services import record
from audit.verification import verify_export
from tests.audit.conftest import log_event_ids, tamper

pytestmark = pytest.mark.django_db
SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "verify_audit_export.py"
URL = "/api/v1/audit/export"


@pytest.fixture
def log():
    """30 events over companies 1 and 2, buildings, partners, actions and outcomes, and one of no company."""
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


def split(body: str, fmt: str) -> tuple[list[list[str]], dict]:
    """(rows as lists of strings, trailer)."""
    if fmt == "jsonl":
        lines = body.splitlines()
        return [[json.loads(line)[f] for f in FIELDS] for line in lines[:-1]], json.loads(lines[-1])
    reader = list(csv.reader(io.StringIO(body)))
    assert reader[0] == list(FIELDS)
    assert reader[-1][0] == "#proof"
    return reader[1:-1], json.loads(reader[-1][1])


def join(rows: list[list[str]], trailer: dict, fmt: str) -> str:
    if fmt == "jsonl":
        return "".join(json.dumps(dict(zip(FIELDS, r, strict=True))) + "\n" for r in rows) + json.dumps(trailer) + "\n"
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(FIELDS)
    writer.writerows(rows)
    writer.writerow(["#proof", json.dumps(trailer)])
    return out.getvalue()


def rows_of(body: str, fmt: str) -> list[dict]:
    return [dict(zip(FIELDS, r, strict=True)) for r in split(body, fmt)[0]]


def export(user, fmt="jsonl", **params) -> str:
    response = client_for(user).get(URL, {"format": fmt, **params})
    assert response.status_code == 200, response.content
    return b"".join(response.streaming_content).decode()


def run_script(body: str, tmp_path, suffix: str, keys: str | None = None) -> subprocess.CompletedProcess:
    path = tmp_path / f"export.{suffix}"
    path.write_text(body)
    key = tmp_path / "keys.pem"
    key.write_text(keys or signing.public_key_pem())
    return subprocess.run([sys.executable, str(SCRIPT), str(path), "--public-key", str(key)],
                          capture_output=True, text=True, timeout=60)


def both_reject(body: str, fmt: str, tmp_path, expected: str) -> None:
    """Both verifiers refuse `body`, each with a message containing `expected`."""
    report = verify_export(body)
    assert not report.ok
    assert any(expected in p for p in report.problems), report.problems
    result = run_script(body, tmp_path, fmt)
    assert result.returncode == 1, result.stdout
    assert "FAILED" in result.stderr
    assert expected in result.stderr, result.stderr


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_export_is_company_scoped_and_verifies_offline(fmt, log, make_staff, tmp_path, capsys):
    officer = make_staff("officer1", companies={1})
    body = export(officer, fmt)
    rows, trailer = split(body, fmt)
    assert {r[FIELDS.index("company_id")] for r in rows} == {"1"}
    assert len(rows) == 14
    statement = trailer["statement"]
    assert statement["unsealed"]["rows"] == 0  # the export sealed first
    assert [(e["log"], e["first"], e["rows"], e["end"]["tree_size"]) for e in statement["logs"]] == [
        ("company:1", 0, 14, 14)]
    assert statement["filtered"] is False
    report = verify_export(body)
    assert report.ok, report.problems
    assert report.sealed_rows == 14
    result = run_script(body, tmp_path, fmt)
    assert result.returncode == 0, result.stderr
    assert "14 rows in 1 logs (complete ranges) proven" in result.stdout
    call_command("verify_audit_export", str(tmp_path / f"export.{fmt}"))
    assert "export OK" in capsys.readouterr().out
    exported = AuditEvent.objects.get(action=Action.AUDIT_EXPORTED)
    assert exported.reason == f"format.{fmt}"


def test_superuser_sees_every_log_and_the_full_export_needs_no_proof_hashes(log, make_staff):
    root = make_staff("root", companies=set(), superuser=True)
    body = export(root)
    rows, trailer = split(body, "jsonl")
    # the log's 28 events and the exporter's own sign-in (auth.login, no company: the platform log)
    assert [row[FIELDS.index("action")] for row in rows].count("auth.login") == 1
    logs = trailer["statement"]["logs"]
    assert {e["log"]: e["rows"] for e in logs} == {"company:1": 14, "company:2": 13, "platform": 2}
    assert sum(e["rows"] for e in logs) == 29 == sum(e["end"]["tree_size"] for e in logs)
    assert all(hashes == [] for hashes in trailer["proofs"].values())
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
    _rows, trailer = split(body, "csv")
    assert trailer["statement"]["filtered"] is True  # the statement says it is a subset
    assert all("positions" in e for e in trailer["statement"]["logs"])
    assert verify_export(body).ok
    result = run_script(body, tmp_path, "csv")
    assert result.returncode == 0, result.stderr
    assert "(filtered subset)" in result.stdout


def test_export_time_window_is_the_range_between_two_checkpoints(make_staff, tmp_path):
    before = [record(action=Action.PARTNER_OPEN, outcome=Outcome.SUCCESS, company_id=1) for _ in range(4)]
    audit_seal()
    moment = timezone.now()
    inside = [record(action=Action.PARTNER_OPEN, outcome=Outcome.SUCCESS, company_id=1) for _ in range(5)]
    officer = make_staff("officer3", companies={1, 2})
    body = export(officer, **{"from": moment.isoformat(), "to": (moment + datetime.timedelta(hours=1)).isoformat()})
    assert [int(r["id"]) for r in rows_of(body, "jsonl")] == [e.pk for e in inside]
    entry = split(body, "jsonl")[1]["statement"]["logs"][0]
    assert (entry["first"], entry["rows"], entry["start"]["tree_size"], entry["end"]["tree_size"]) == (4, 5, 4, 9)
    assert verify_export(body).ok
    assert run_script(body, tmp_path, "jsonl").returncode == 0
    assert len(before) == 4


def test_rows_after_the_last_seal_come_last_unproven_but_signed(log, make_staff, tmp_path):
    audit_seal()
    late = record(action=Action.PARTNER_OPEN, outcome=Outcome.SUCCESS, company_id=1)
    plan = export_plan(EventFilter(company_ids=frozenset({1})))
    body = b"".join(export_stream(plan=plan, fmt="jsonl")).decode()
    rows, trailer = split(body, "jsonl")
    assert rows[-1][0] == str(late.pk)
    assert trailer["statement"]["unsealed"]["rows"] == 1
    report = verify_export(body)
    assert report.ok
    assert report.unsealed_rows == 1
    assert run_script(body, tmp_path, "jsonl").returncode == 0
    rows[-1][FIELDS.index("outcome")] = "denied"
    both_reject(join(rows, trailer, "jsonl"), "jsonl", tmp_path, "unsealed rows")


# --- tampering, with the trailer rebuilt by someone who has every leaf hash but not the key ---


def rebuilt(rows: list[list[str]], trailer: dict) -> dict:
    """The trailer an attacker would write for `rows`: every proof recomputed from the real log (the
    rows' true positions), the signed statement left as it is (they cannot sign another)."""
    trailer = json.loads(json.dumps(trailer))
    positions: dict[str, list[int]] = {}
    for row in rows:
        company = row[FIELDS.index("company_id")]
        name = f"company:{company}" if company else "platform"
        order = log_event_ids(int(company) if company else None)
        positions.setdefault(name, []).append(order.index(int(row[0])))
    for entry in trailer["statement"]["logs"]:
        log_ = AuditLog.objects.get(name=entry["log"])
        members = sorted(set(positions.get(entry["log"], [])))
        size = entry["end"]["tree_size"]
        stored = list(leaf_hashes(log_id=log_.pk, after=0, upto=size))
        others = (leaf for p, leaf in enumerate(stored) if p not in members)
        trailer["proofs"][entry["log"]] = [h.hex() for h in multiproof(size, PositionRuns.from_positions(members),
                                                                       others)]
    return trailer


def tampered(body: str, fmt: str, how: str) -> str:
    rows, trailer = split(body, fmt)
    exported = [int(r[0]) for r in rows]
    outside = (AuditEvent.objects.filter(company_id=1).exclude(id__in=exported).order_by("id").first()
               or AuditEvent.objects.filter(company_id=2).order_by("id").first())
    if how == "drop":
        del rows[2]
    elif how == "drop_first":
        del rows[0]
    elif how == "add":
        from audit.canonical import strings_from_values

        rows.insert(3, list(strings_from_values(AuditEvent.objects.filter(pk=outside.pk).values_list(*FIELDS).get())))
    elif how == "duplicate":
        rows.insert(3, list(rows[2]))
    elif how == "reorder":
        rows[2], rows[3] = rows[3], rows[2]
    elif how == "alter":
        index = FIELDS.index("outcome")
        rows[2][index] = "success" if rows[2][index] == "denied" else "denied"
    return join(rows, rebuilt(rows, trailer) if how != "reorder" else trailer, fmt)


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
@pytest.mark.parametrize(("how", "expected"), [
    ("drop", "the signed statement"),
    ("drop_first", "the signed statement"),
    ("add", "the signed statement"),
    ("duplicate", "the signed statement"),
    ("reorder", "rows do not hash to the signed checkpoint"),
    ("alter", "rows do not hash to the signed checkpoint"),
])
@pytest.mark.parametrize("params", [{}, {"partner": 100}], ids=["complete", "filtered"])
def test_tampered_exports_fail_both_verifiers_even_with_the_trailer_rebuilt(fmt, how, expected, params, log,
                                                                            make_staff, tmp_path):
    officer = make_staff("officer4", companies={1})
    body = export(officer, fmt, **params)
    assert verify_export(body).ok
    forged = tampered(body, fmt, how)
    assert forged != body
    both_reject(forged, fmt, tmp_path, expected)


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_a_statement_rewritten_to_match_the_rows_fails_its_signature(fmt, log, make_staff, tmp_path):
    body = export(make_staff("officer9", companies={1}), fmt)
    rows, trailer = split(body, fmt)
    del rows[0]
    entry = trailer["statement"]["logs"][0]
    entry["first"], entry["rows"], entry["start"] = 1, entry["rows"] - 1, None
    both_reject(join(rows, rebuilt(rows, trailer), fmt), fmt, tmp_path, "signature")


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_a_forged_checkpoint_fails_both_verifiers(fmt, log, make_staff, tmp_path):
    body = export(make_staff("officer10", companies={1, 2}), fmt, partner=100)
    rows, trailer = split(body, fmt)
    forger = Ed25519PrivateKey.generate()
    cp = trailer["statement"]["logs"][0]["end"]
    cp["root_hash"] = "cd" * 32
    cp["signature"] = base64.b64encode(forger.sign(signing.checkpoint_message(
        cp["log"], cp["tree_size"], cp["root_hash"], cp["signed_at"]))).decode()
    both_reject(join(rows, trailer, fmt), fmt, tmp_path, "signature")


def test_verifier_refuses_a_file_signed_by_another_key(log, make_staff, tmp_path):
    body = export(make_staff("officer5", companies={1}))
    other = signing.public_key_pem(Ed25519PrivateKey.generate().public_key())
    report = verify_export(body, other)
    assert not report.ok
    assert "unknown key" in report.problems[0]
    assert run_script(body, tmp_path, "jsonl", keys=other).returncode == 1


def test_a_file_signed_by_a_retired_key_verifies_with_the_keyring(log, make_staff, tmp_path, settings):
    body = export(make_staff("officer11", companies={1}))
    old = signing.public_key_pem()
    settings.AUDIT_SIGNING_KEY = base64.b64encode(b"k" * 32).decode()
    settings.AUDIT_VERIFY_KEYS = old
    assert signing.public_key_pem() != old
    assert verify_export(body).ok
    keys = signing.public_key_pem() + old
    assert run_script(body, tmp_path, "jsonl", keys=keys).returncode == 0


def test_export_after_pruning_still_verifies(log, make_staff, tmp_path, monkeypatch):
    from tests.audit.test_sealing import seal_long_ago

    seal_long_ago(monkeypatch)
    young = record(action=Action.PARTNER_OPEN, outcome=Outcome.SUCCESS, company_id=1)
    call_command("prune_audit", "--older-than-days", "30")
    body = export(make_staff("officer6", companies={1}))
    rows, trailer = split(body, "jsonl")
    entry = trailer["statement"]["logs"][0]
    assert (entry["first"], entry["start"]["tree_size"]) == (14, 14)
    pruned = AuditEvent.objects.get(action=Action.AUDIT_PRUNED, company_id=1)  # recorded in the log it pruned
    assert [r[0] for r in rows] == [str(young.pk), str(pruned.pk)]
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


@pytest.mark.parametrize("params", [{}, {"partner": 100}], ids=["complete", "filtered"])
def test_a_row_deleted_in_the_database_makes_the_export_fail_verification(params, log, make_staff, tmp_path):
    audit_seal()
    tamper("DELETE FROM audit_event WHERE id = %s", [log[4].pk])  # company 1, position 2
    body = export(make_staff("officer8", companies={1, 2}), **params)
    trailer = split(body, "jsonl")[1]
    assert trailer["statement"]["missing"] == {"company:1": 2}
    both_reject(body, "jsonl", tmp_path, "deleted")


def test_rows_carry_the_leaf_strings(log, make_staff):
    body = export(make_staff("officer12", companies={1}), "csv")
    rows, _ = split(body, "csv")
    stored = {e.pk: e for e in log}
    first = stored[int(rows[0][0])]
    assert rows[0][FIELDS.index("request_id")] == first.request_id
    assert event_leaf_hash(rows[0]) == event_leaf_hash(rows_of(export(
        make_staff("officer13", companies={1}), "jsonl"), "jsonl")[0].values())
