"""The audit log's health gauges on /metrics: unsealed events, last seal, last verification."""

import time

import pytest
from django.utils import timezone

from audit.actions import Action, Outcome
from audit.sealing import audit_seal
from audit.services import audit_verify, record
from core.observability.scrape import scrape_registry
from tests.audit.conftest import tamper

pytestmark = pytest.mark.django_db


def sample(name):
    return scrape_registry().get_sample_value(name)


def events(n):
    return [record(action=Action.PARTNER_OPEN, outcome=Outcome.SUCCESS, request_id=f"m{i}", company_id=1)
            for i in range(n)]


def test_unsealed_events_and_last_seal():
    assert sample("smarthome_audit_last_seal_timestamp_seconds") == 0  # never sealed
    events(3)
    assert sample("smarthome_audit_unsealed_events") == 3
    before = time.time()
    audit_seal()
    assert sample("smarthome_audit_unsealed_events") == 0
    assert before - 1 <= sample("smarthome_audit_last_seal_timestamp_seconds") <= time.time() + 1


def test_verification_result_and_time():
    assert sample("smarthome_audit_verification_ok") is None  # never verified: no verdict to report
    assert sample("smarthome_audit_last_verification_timestamp_seconds") == 0
    made = events(4)
    audit_seal()
    assert audit_verify().ok
    assert sample("smarthome_audit_verification_ok") == 1
    assert abs(sample("smarthome_audit_last_verification_timestamp_seconds") - timezone.now().timestamp()) < 5

    tamper("UPDATE audit_event SET outcome = 'denied' WHERE id = %s", [made[2].pk])
    assert not audit_verify().ok
    assert sample("smarthome_audit_verification_ok") == 0


def test_metrics_endpoint_shows_them(client):
    events(2)
    body = client.get("/metrics", REMOTE_ADDR="127.0.0.1").content.decode()
    assert "\nsmarthome_audit_unsealed_events 2.0\n" in body
