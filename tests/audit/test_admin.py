"""Admin pages: read-only, company-scoped lists; export and reconciliation for compliance officers."""

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django_otp import DEVICE_ID_SESSION_KEY

from audit.actions import Action, Outcome
from audit.models import AuditEvent
from audit.sealing import audit_seal
from audit.services import record
from audit.verification import verify_export
from core.models import EncryptedTOTPDevice

pytestmark = pytest.mark.django_db


@pytest.fixture
def events():
    return [record(action=Action.PARTNER_OPEN, outcome=Outcome.SUCCESS, company_id=c, request_id=f"rq-{c}-{i}")
            for c in (1, 2) for i in range(3)]


def logged_in(user) -> Client:
    """A session that passed password + TOTP (the admin demands a verified second factor)."""
    device = EncryptedTOTPDevice.objects.create(user=user, name="default", confirmed=True)
    client = Client()
    client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()
    return client


def test_event_list_is_scoped_and_read_only(events, make_staff):
    client = logged_in(make_staff("co1", companies={1}))
    page = client.get("/admin/audit/auditevent/")
    assert page.status_code == 200
    text = page.content.decode()
    assert "rq-1-0" in text
    assert "rq-2-0" not in text
    assert "Export with proof" in text
    assert client.get("/admin/audit/auditevent/add/").status_code == 403
    event = events[0]
    response = client.post(f"/admin/audit/auditevent/{event.pk}/delete/", {"post": "yes"})
    assert response.status_code == 403
    assert AuditEvent.objects.filter(pk=event.pk).exists()
    other = events[-1]  # company 2
    assert client.get(f"/admin/audit/auditevent/{event.pk}/change/").status_code == 200
    # another company's event is "not found" like one that does not exist (a redirect would confirm it)
    assert client.get(f"/admin/audit/auditevent/{other.pk}/change/").status_code == 404
    assert client.get(f"/admin/audit/auditevent/{other.pk}/history/").status_code == 404
    assert client.get("/admin/audit/auditevent/999999999/change/").status_code == 404


def test_checkpoint_list_shows_latest_verified_and_the_key(events, make_staff):
    from django.core.management import call_command

    result = audit_seal()
    call_command("verify_audit")
    text = logged_in(make_staff("co2", companies={1})).get("/admin/audit/auditcheckpoint/").content.decode()
    assert f"Latest verified seal:\n{result.seal.pk} (verified" in text
    assert "company:1" in text
    assert "company:2" not in text  # another company's log
    assert "BEGIN PUBLIC KEY" in text


def test_admin_export_streams_a_verifiable_file(events, make_staff):
    client = logged_in(make_staff("co3", companies={2}))
    assert client.get("/admin/audit/auditevent/export/").status_code == 200
    response = client.post("/admin/audit/auditevent/export/", {"format": "jsonl"})
    assert response.status_code == 200
    body = b"".join(response.streaming_content).decode()
    assert {json.loads(line)["company_id"] for line in body.splitlines()[:-1]} == {"2"}
    assert verify_export(body).ok


def test_refused_partner_calls_are_listed_for_staff_who_see_every_company(make_staff):
    from audit.refusals import refusal_count

    refusal_count(reason="ip_not_allowed", partner_id=4, source_ip="198.51.100.9")
    root = logged_in(make_staff("sec", companies=set(), superuser=True))
    text = root.get("/admin/audit/auditrefusal/").content.decode()
    assert "ip_not_allowed" in text
    assert "partner:4" in text
    officer = logged_in(make_staff("co5", companies={1}))
    assert "partner:4" not in officer.get("/admin/audit/auditrefusal/").content.decode()


def test_admin_pages_refuse_staff_without_the_role(events, make_staff):
    client = logged_in(make_staff("pm", companies={1}, compliance=False))
    assert client.post("/admin/audit/auditevent/export/", {"format": "csv"}).status_code == 403
    assert client.get("/admin/audit/auditevent/reconcile/").status_code == 403
    assert not AuditEvent.objects.filter(action=Action.AUDIT_EXPORTED).exists()


def test_admin_reconcile_upload(events, make_staff):
    client = logged_in(make_staff("co4", companies={1}))
    when = events[0].occurred_at
    log = {"entries": [{"request_id": "rq-1-0", "operation": "device.open", "result": "opened",
                        "http_status": 200, "at": when.isoformat()}]}
    form = {"since": (when.replace(minute=0, second=0)).strftime("%Y-%m-%d %H:%M:%S"),
            "until": "2100-01-01 00:00:00", "skew_threshold_s": "5",
            "partner_log": SimpleUploadedFile("partner.json", json.dumps(log).encode())}
    page = client.post("/admin/audit/auditevent/reconcile/", form)
    assert page.status_code == 200
    text = page.content.decode()
    assert "missing_at_partner" in text
    assert "rq-1-1" in text
    form["partner_log"] = SimpleUploadedFile("partner.json", json.dumps(log).encode())
    form["csv"] = "on"
    download = client.post("/admin/audit/auditevent/reconcile/", form)
    assert download["Content-Type"].startswith("text/csv")
    assert download.content.decode().count("missing_at_partner") == 5
