"""The single legacy log: its events move into per-company logs with a signed, verifiable link."""

import pytest

from audit import signing
from audit.actions import Action, Outcome
from audit.canonical import FIELDS, LEGACY_FIELDS, legacy_leaf_hash, strings_from_values
from audit.merkle import Frontier
from audit.models import AuditCheckpoint, AuditEvent, AuditLogLink, LegacyCheckpoint, LegacyLeaf
from audit.sealing import audit_seal, audit_seal_pending
from audit.services import record
from audit.verification import verify_log
from tests.audit.conftest import log_event_ids, tamper

pytestmark = pytest.mark.django_db


def legacy_seal(events) -> LegacyCheckpoint:
    """What the single-log sealer wrote: v1 leaves in id order and a v1-signed checkpoint."""
    frontier = Frontier()
    start = LegacyLeaf.objects.count()
    for position, event in enumerate(sorted(events, key=lambda e: e.pk), start):
        values = AuditEvent.objects.filter(pk=event.pk).values_list(*FIELDS).get()
        leaf = legacy_leaf_hash(strings_from_values(values)[:len(LEGACY_FIELDS)])
        LegacyLeaf.objects.create(position=position, event_id=event.pk, leaf_hash=leaf)
    for leaf in LegacyLeaf.objects.order_by("position").values_list("leaf_hash", flat=True):
        frontier.append(bytes(leaf))
    from django.utils import timezone

    signed_at = timezone.now()
    root_hex = frontier.root().hex()
    key_id, signature = signing.sign(signing.legacy_checkpoint_message(frontier.size, root_hex, signed_at))
    return LegacyCheckpoint.objects.create(tree_size=frontier.size, root_hash=root_hex, signed_at=signed_at,
                                           key_id=key_id, signature=signature, frontier=frontier.to_hex())


@pytest.fixture
def legacy():
    """12 events of companies 1, 2 and none, sealed in two legacy checkpoints; one more unsealed."""
    made = [record(action=Action.PARTNER_OPEN, outcome=Outcome.SUCCESS, company_id=[1, 2, None][i % 3],
                   request_id=f"old-{i}") for i in range(12)]
    legacy_seal(made[:5])
    last = legacy_seal(made[5:])
    waiting = record(action=Action.PARTNER_OPEN, outcome=Outcome.SUCCESS, company_id=1, request_id="new-0")
    return made, last, waiting


def test_the_first_seal_moves_the_legacy_events_into_their_logs_and_signs_the_link(legacy):
    made, last, waiting = legacy
    audit_seal_pending()
    link = AuditLogLink.objects.get()
    legacy_part = link.statement["legacy"]
    assert (legacy_part["tree_size"], legacy_part["root_hash"]) == (12, last.root_hash)
    assert link.statement["through_event_id"] == made[-1].pk
    assert {entry["log"]: entry["tree_size"] for entry in link.statement["logs"]} == {
        "company:1": 4, "company:2": 4, "platform": 4}
    assert log_event_ids(1) == [e.pk for e in made if e.company_id == 1] + [waiting.pk]
    assert log_event_ids(None) == [e.pk for e in made if e.company_id is None]
    assert signing.verify(signing.statement_message("smarthome-audit-link/v1", link.statement), link.signature)
    report = verify_log()
    assert report.ok, report.problems
    assert report.legacy_leaves == 12


def test_the_link_is_written_once(legacy):
    audit_seal_pending()
    record(action=Action.PARTNER_OPEN, outcome=Outcome.SUCCESS, company_id=2)
    audit_seal()
    assert AuditLogLink.objects.count() == 1
    assert verify_log().ok


def test_a_changed_link_fails_verification(legacy):
    audit_seal_pending()
    link = AuditLogLink.objects.get()
    statement = dict(link.statement, through_event_id=1)
    import json

    tamper("UPDATE audit_log_link SET statement = %s", [json.dumps(statement)])
    report = verify_log()
    assert not report.ok
    assert any(p.startswith("legacy link: signature invalid") for p in report.problems)


def test_an_altered_legacy_event_fails_both_logs(legacy):
    made, _last, _waiting = legacy
    audit_seal_pending()
    tamper("UPDATE audit_event SET outcome = 'denied' WHERE id = %s", [made[4].pk])
    report = verify_log()
    assert not report.ok
    assert any(p.startswith("legacy log: position 4:") for p in report.problems)
    assert report.first_bad == {"company:2": 1}


def test_a_legacy_log_whose_checkpoint_was_forged_fails(legacy):
    audit_seal_pending()
    tamper("UPDATE audit_checkpoint SET root_hash = %s WHERE tree_size = 12", ["ab" * 32])
    report = verify_log()
    assert not report.ok
    assert any("legacy log: checkpoint 12: root hash does not match" in p for p in report.problems)
    assert AuditCheckpoint.objects.exists()
