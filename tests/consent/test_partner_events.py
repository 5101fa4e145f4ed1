"""The partner's signed enrolment and deletion events update enrolments and deletion receipts."""


import pytest

from audit.models import AuditEvent
from consent.models import DeletionReceipt, FaceEnrolment
from consent.services import face_ordering_key
from partners.models import InboundWebhook
from partners.outbox.services import outbox_enqueue
from tests import factories
from tests.partners import partner_api
from tests.partners.test_webhooks import send, signed

pytestmark = pytest.mark.django_db
partner_api_settings = partner_api.partner_api_settings
partner_caller = partner_api.partner_caller


@pytest.fixture
def enrolment(partner_caller):
    building = factories.building()
    factories.contract(partner_=partner_caller.partner, company_=building.company, buildings=[building])
    resident = factories.resident(unit_=factories.unit(building_=building))
    return factories.face_enrolment(resident_=resident, partner_=partner_caller.partner, building_id=building.pk)


def event(caller, event_type, data):
    response = send(caller, *signed(caller.webhook_secret, event_type, data))
    assert response.status_code == 200, response.content


def status(enrolment) -> str:
    return FaceEnrolment.objects.get(pk=enrolment.pk).status


def test_enrolment_completed_makes_it_active(partner_caller, enrolment):
    event(partner_caller, "enrolment.completed", {"subject_id": enrolment.subject_id})
    assert status(enrolment) == "active"


def test_enrolment_failed(partner_caller, enrolment):
    event(partner_caller, "enrolment.failed", {"subject_id": enrolment.subject_id, "error": "no_face"})
    assert status(enrolment) == "failed"


def test_a_late_completion_does_not_revive_a_deleted_enrolment(partner_caller, enrolment):
    FaceEnrolment.objects.filter(pk=enrolment.pk).update(status="deleting")
    event(partner_caller, "enrolment.completed", {"subject_id": enrolment.subject_id})
    assert status(enrolment) == "deleting"


def test_subject_deleted_confirms_our_deletion_once(partner_caller, enrolment):
    FaceEnrolment.objects.filter(pk=enrolment.pk).update(status="deleting")
    message = outbox_enqueue(partner_id=partner_caller.partner.pk, operation="face_delete",
                             ordering_key=face_ordering_key(enrolment.subject_id),
                             payload={"subject": enrolment.subject_id})
    for _ in range(2):
        event(partner_caller, "subject.deleted", {"subject_id": enrolment.subject_id, "deletion_id": "del-1"})
    assert status(enrolment) == "deleted"
    receipt = DeletionReceipt.objects.get(subject_id=enrolment.subject_id)
    assert (receipt.deletion_id, receipt.outbox_message_id) == ("del-1", message.pk)
    assert AuditEvent.objects.filter(action="biometric.delete_receipt").count() == 1


def test_another_partners_event_is_refused_and_changes_nothing(partner_caller, enrolment, dev_pki):
    other = partner_api.make_partner_caller(dev_pki["smarthome-client.pem"]).login()
    response = send(other, *signed(other.webhook_secret, "enrolment.completed", {"subject_id": enrolment.subject_id}))
    assert response.status_code == 422, response.content
    assert response.json()["type"] == "/problems/unknown-subject"
    assert status(enrolment) == "delivered"
    assert not InboundWebhook.objects.exists()
    assert AuditEvent.objects.filter(action="webhook.rejected", reason="unknown_subject").count() == 1


@pytest.mark.parametrize("event_type", ["enrolment.completed", "enrolment.failed", "subject.deleted"])
def test_an_event_about_an_unknown_subject_is_refused(partner_caller, enrolment, event_type):
    response = send(partner_caller, *signed(partner_caller.webhook_secret, event_type, {"subject_id": "sub_nobody"}))
    assert response.status_code == 422, response.content
    assert status(enrolment) == "delivered"
    assert not DeletionReceipt.objects.exists()
