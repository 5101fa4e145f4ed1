"""Reconciliation with the partner's log: crafted logs with every kind of difference."""

import datetime
import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from prometheus_client import REGISTRY

from audit.actions import Action, Outcome
from audit.models import AuditEvent
from audit.reconcile import (
    OurCall,
    PartnerEntry,
    audit_reconcile,
    partner_entries_from_text,
    partner_outcome,
    reconcile_logs,
)
from audit.services import record
from audit.tasks import reconcile_partners

T0 = datetime.datetime(2026, 11, 1, 12, 0, tzinfo=datetime.UTC)
SINCE, UNTIL = T0 - datetime.timedelta(hours=1), T0 + datetime.timedelta(hours=1)


def at(seconds: float) -> datetime.datetime:
    return T0 + datetime.timedelta(seconds=seconds)


def ours(request_id, action=Action.PARTNER_OPEN, outcome=Outcome.SUCCESS, t=0.0, status=200, event_id=1):
    return OurCall(event_id, request_id, action, outcome, at(t), status)


def theirs(request_id, operation="device.open", result="opened", t=0.0, status=200):
    return PartnerEntry(request_id, operation, result, at(t), status)


def test_identical_logs_have_no_differences():
    report = reconcile_logs(
        [ours("a"), ours("b", Action.PARTNER_FACE_DELETE, t=1), ours("c", outcome=Outcome.DENIED, t=2)],
        [theirs("a", t=0.3), theirs("b", "face.delete", "deleted", t=1.2, status=204),
         theirs("c", "open", "denied", t=2)],  # "open" is the short alias
        since=SINCE, until=UNTIL,
    )
    assert report.clean
    assert report.summary() == {"ours": 3, "theirs": 3, "matched": 3, "missing_at_partner": 0,
                                "missing_here": 0, "outcome_mismatch": 0, "clock_skew": 0}


def test_every_kind_of_difference_is_reported():
    report = reconcile_logs(
        [
            ours("only-ours", event_id=11),
            ours("timeout", outcome=Outcome.TIMEOUT, status=None, event_id=12),
            ours("skewed", t=0, event_id=13),
            ours("never-sent", outcome=Outcome.UNAVAILABLE, status=None, event_id=14),  # breaker open
            ours("same-id-other-op", Action.PARTNER_WEBRTC_SESSION, event_id=15),
        ],
        [
            theirs("only-theirs", t=5),
            theirs("timeout", result="opened"),
            theirs("skewed", t=9.5),
            theirs("same-id-other-op", "face.enrol", "enrolled"),
            theirs("outside-period", t=3 * 3600),
        ],
        since=SINCE, until=UNTIL, skew_threshold_s=5,
    )
    kinds = {(d.kind, d.request_id, d.operation) for d in report.differences}
    assert kinds == {
        ("missing_at_partner", "only-ours", "device.open"),
        ("missing_here", "only-theirs", "device.open"),
        ("outcome_mismatch", "timeout", "device.open"),
        ("clock_skew", "skewed", "device.open"),
        ("missing_at_partner", "same-id-other-op", "device.webrtc_session"),
        ("missing_here", "same-id-other-op", "face.enrol"),
    }
    skew = next(d for d in report.differences if d.kind == "clock_skew")
    assert skew.skew_s == 9.5
    assert skew.our_event_id == 13
    assert report.counts == {"missing_at_partner": 2, "missing_here": 2, "outcome_mismatch": 1, "clock_skew": 1}
    lines = report.to_csv().splitlines()
    assert lines[0].startswith("kind,request_id,operation")
    assert len(lines) == 7


def test_retries_pair_up_in_time_order():
    report = reconcile_logs(
        [ours("r", outcome=Outcome.TIMEOUT, status=None, t=0), ours("r", t=3)],
        [theirs("r", t=0.1), theirs("r", t=3.1)],
        since=SINCE, until=UNTIL,
    )
    assert [d.kind for d in report.differences] == ["outcome_mismatch"]


def test_boundary_entries_within_the_threshold_match_but_are_never_missing_here():
    report = reconcile_logs(
        [ours("edge", t=3599)],  # just inside the period
        [theirs("edge", t=3601), theirs("after", t=3602)],  # just after it, within the margin
        since=SINCE, until=UNTIL, skew_threshold_s=5,
    )
    assert report.clean
    assert report.matched == 1


@pytest.mark.parametrize(
    ("result", "status", "outcome"),
    [("opened", 200, "success"), ("created", 201, "success"), ("deleted", 204, "success"),
     ("replaced", 200, "success"), ("patched", 200, "success"), ("denied", 200, "denied"),
     ("offline", 200, "unavailable"), ("unknown_device", 404, "failure"), ("version_conflict", 409, "failure"),
     ("internal", 503, "error"), (None, 204, "success")],
)
def test_outcome_table(result, status, outcome):
    assert partner_outcome(result, status) == outcome


SANDBOX_DOC = {"entries": [
    {"request_id": "a", "operation": "device.open", "device_ref": "gate-1", "subject": "s1", "result": "opened",
     "http_status": 200, "at": "2026-11-01T12:00:00.100000Z"},
    {"request_id": "b", "operation": "face.delete", "device_ref": None, "subject": "s2", "result": "deleted",
     "http_status": 204, "at": "2026-11-01T12:00:01+00:00"},
]}


def test_partner_log_formats_parse_alike():
    as_json = partner_entries_from_text(json.dumps(SANDBOX_DOC))
    as_jsonl = partner_entries_from_text("\n".join(json.dumps(e) for e in SANDBOX_DOC["entries"]))
    header = "request_id,operation,device_ref,subject,result,http_status,at"
    rows = [",".join(str(e[k] or "") for k in header.split(",")) for e in SANDBOX_DOC["entries"]]
    as_csv = partner_entries_from_text("\n".join([header, *rows]), name="log.csv")
    assert as_json == as_jsonl == as_csv
    assert as_json[1].http_status == 204
    assert as_json[0].at == at(0.1)


@pytest.mark.django_db
def test_command_reconciles_a_file_writes_csv_and_alerts(tmp_path, capsys):
    def ev(request_id, outcome=Outcome.SUCCESS, status=200):
        return record(action=Action.PARTNER_OPEN, outcome=outcome, partner_id=7, request_id=request_id,
                      http_status=status)

    ev("a")
    ev("b", outcome=Outcome.TIMEOUT, status=None)
    ev("c")
    record(action=Action.PARTNER_OPEN, outcome=Outcome.SUCCESS, partner_id=8, request_id="other-partner")
    record(action=Action.ACCESS_DECISION, outcome=Outcome.SUCCESS, partner_id=7, request_id="not-a-call")
    now = AuditEvent.objects.order_by("-id").first().occurred_at
    stamp = now.isoformat()
    log = tmp_path / "partner.jsonl"
    log.write_text("\n".join(json.dumps(e) for e in [
        {"request_id": "a", "operation": "device.open", "result": "opened", "http_status": 200, "at": stamp},
        {"request_id": "b", "operation": "device.open", "result": "opened", "http_status": 200, "at": stamp},
        {"request_id": "z", "operation": "device.open", "result": "opened", "http_status": 200, "at": stamp},
    ]))
    before = REGISTRY.get_sample_value("smarthome_audit_reconcile_differences_total",
                                       {"kind": "missing_here"}) or 0
    out_csv = tmp_path / "diff.csv"
    window = ["--from", (now - datetime.timedelta(minutes=5)).isoformat(),
              "--to", (now + datetime.timedelta(minutes=5)).isoformat()]
    with pytest.raises(SystemExit):
        call_command("reconcile_audit", "--file", str(log), "--partner", "7", *window, "--csv-out", str(out_csv),
                     "--fail-on-differences")
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary == {"ours": 3, "theirs": 3, "matched": 2, "missing_at_partner": 1, "missing_here": 1,
                       "outcome_mismatch": 1, "clock_skew": 0}
    assert {line.split(",")[0] for line in out_csv.read_text().splitlines()[1:]} == {
        "missing_at_partner", "missing_here", "outcome_mismatch"}
    assert AuditEvent.objects.filter(action=Action.SECURITY_ALERT, reason="audit_reconcile_mismatch",
                                     partner_id=7).count() == 1
    assert AuditEvent.objects.get(action=Action.AUDIT_RECONCILED).outcome == Outcome.FAILURE
    after = REGISTRY.get_sample_value("smarthome_audit_reconcile_differences_total", {"kind": "missing_here"})
    assert after == before + 1


@pytest.mark.django_db
def test_partner_url_needs_the_fetcher_hook(settings):
    settings.AUDIT_PARTNER_LOG_FETCHER = ""
    with pytest.raises(CommandError, match="AUDIT_PARTNER_LOG_FETCHER"):
        call_command("reconcile_audit", "--partner-url", "https://partner.invalid", "--from", "2026-11-01",
                     "--to", "2026-11-02")
    assert reconcile_partners() == {}  # the daily task is a no-op without it


class FakePartnerFetcher:
    """Stands in for the partners app's outbound client (not written yet)."""

    calls: list = []

    @classmethod
    def partners(cls):
        return [7]

    @classmethod
    def fetch(cls, *, partner_id, url, since, until):
        cls.calls.append((partner_id, url, since, until))
        return [{"request_id": "x", "operation": "device.open", "result": "opened", "http_status": 200,
                 "at": (since + datetime.timedelta(hours=1)).isoformat()}]


@pytest.mark.django_db
def test_daily_task_reconciles_each_partner_and_alerts(settings):
    settings.AUDIT_PARTNER_LOG_FETCHER = "tests.audit.test_reconcile.FakePartnerFetcher"
    result = reconcile_partners()
    assert result[7]["missing_here"] == 1
    since, until = FakePartnerFetcher.calls[-1][2:]
    assert until - since == datetime.timedelta(days=1)
    assert until.hour == 0
    assert AuditEvent.objects.filter(action=Action.SECURITY_ALERT).count() == 1


@pytest.mark.django_db
def test_reconcile_service_is_clean_for_matching_logs():
    event = record(action=Action.PARTNER_FACE_ENROL, outcome=Outcome.SUCCESS, partner_id=1, request_id="e1",
                   http_status=202)
    entry = PartnerEntry("e1", "face.enrol", "enrolled", event.occurred_at, 202)
    report = audit_reconcile(partner_entries=[entry], partner_id=1,
                             since=event.occurred_at - datetime.timedelta(minutes=1),
                             until=event.occurred_at + datetime.timedelta(minutes=1))
    assert report.clean
    assert not AuditEvent.objects.filter(action=Action.SECURITY_ALERT).exists()
    assert AuditEvent.objects.get(action=Action.AUDIT_RECONCILED).outcome == Outcome.SUCCESS


@pytest.mark.django_db
def test_the_database_walk_and_the_pure_function_report_the_same():
    """audit_reconcile (on PostgreSQL: partner log in a temp table, both sides merged by request id)
    gives exactly what reconcile_logs gives on the same two lists."""
    from audit.reconcile import our_calls

    made = [record(action=[Action.PARTNER_OPEN, Action.PARTNER_FACE_DELETE][i % 2],
                   outcome=[Outcome.SUCCESS, Outcome.TIMEOUT, Outcome.UNAVAILABLE][i % 3], partner_id=3,
                   request_id=f"r{i:03d}", http_status=None if i % 3 == 2 else 200) for i in range(40)]
    operation = {Action.PARTNER_OPEN: ("device.open", "opened"), Action.PARTNER_FACE_DELETE: ("face.delete", "deleted")}
    entries = [PartnerEntry(e.request_id, *operation[e.action], e.occurred_at + datetime.timedelta(seconds=i % 9), 200)
               for i, e in enumerate(made) if i % 7]
    entries += [PartnerEntry("zz-theirs", "device.open", "opened", made[0].occurred_at, 200),
                PartnerEntry("r005", "face.enrol", "enrolled", made[0].occurred_at, 202)]
    since = made[0].occurred_at - datetime.timedelta(minutes=1)
    until = made[-1].occurred_at + datetime.timedelta(minutes=1)
    pure = reconcile_logs(our_calls(partner_id=3, since=since, until=until), entries, since=since, until=until)
    walked = audit_reconcile(partner_entries=iter(entries), partner_id=3, since=since, until=until)
    assert walked.summary() == pure.summary()
    assert walked.differences == pure.differences
    assert {d.kind for d in walked.differences} == {"missing_at_partner", "missing_here", "outcome_mismatch",
                                                    "clock_skew"}
