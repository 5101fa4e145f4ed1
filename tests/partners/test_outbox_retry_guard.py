"""A face upload cancelled on consent revocation is never put back in line: not by the service, not by the admin."""

import pytest
from django.utils import timezone

from audit.actions import Action
from audit.models import AuditEvent
from core.security.roles import SECURITY_ADMIN
from partners.models import OutboxMessage
from partners.outbox.services import outbox_retry_now
from tests import factories
from tests.admin.conftest import login_verified

pytestmark = pytest.mark.django_db

Status = OutboxMessage.Status
CHANGELIST = "/admin/partners/outboxmessage/"


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def dead_message(partner, *, operation, payload, last_error, key) -> OutboxMessage:
    now = timezone.now()
    return OutboxMessage.objects.create(
        partner=partner, operation=operation, ordering_key="face:sub_x", payload=payload, idempotency_key=key,
        status=Status.DEAD, attempts=0, dead_lettered_at=now, last_error=last_error,
    )


@pytest.fixture
def cancelled():
    """As consent revocation leaves a pending face_put: dead-lettered, `consent_revoked`, photo emptied."""
    return dead_message(factories.partner(), operation="face_put", last_error="consent_revoked", key="cancelled-1",
                        payload={"subject": "sub_x", "jwe": "", "consent_ref": "consent:1",
                                 "retention_until": "2030-01-01T00:00:00+00:00"})


def unchanged(message) -> bool:
    row = OutboxMessage.objects.get(pk=message.pk)
    return (row.status, row.attempts, row.dead_lettered_at, row.payload["jwe"]) == (
        Status.DEAD, 0, message.dead_lettered_at, "")


def test_the_service_refuses_a_cancelled_face_upload(cancelled, django_user_model):
    admin = django_user_model.objects.create_superuser("root", "root@example.invalid", "x" * 16)
    with pytest.raises(ValueError, match="consent was revoked cannot be retried"):
        outbox_retry_now(message=cancelled, actor=admin)
    assert unchanged(cancelled)
    assert not AuditEvent.objects.filter(action=Action.ADMIN_CHANGE, reason="outbox_retry_now").exists()


def test_a_face_upload_without_its_photo_is_refused_whatever_the_error(cancelled):
    OutboxMessage.objects.filter(pk=cancelled.pk).update(last_error="http_503")
    with pytest.raises(ValueError, match="cannot be retried"):
        outbox_retry_now(message=cancelled)
    assert OutboxMessage.objects.get(pk=cancelled.pk).status == Status.DEAD


def test_the_admin_skips_it_with_an_error_and_retries_the_others(client, cancelled):
    ordinary = dead_message(cancelled.partner, operation="face_delete", payload={"subject": "sub_x"},
                            last_error="http_503", key="ordinary-1")
    user = factories.staff_user(role=SECURITY_ADMIN)
    login_verified(client, user)
    response = client.post(CHANGELIST, {"action": "retry_now", "_selected_action": [cancelled.pk, ordinary.pk]},
                           follow=True)
    assert response.status_code == 200
    shown = [str(m) for m in response.context["messages"]]
    assert "1 message(s) queued for delivery; 0 delivered one(s) skipped." in shown
    assert (f"Not retried: #{cancelled.pk}: a face upload cancelled because its consent was revoked cannot be "
            "retried") in shown
    assert unchanged(cancelled)
    assert OutboxMessage.objects.get(pk=ordinary.pk).status == Status.PENDING
    assert AuditEvent.objects.filter(action=Action.ADMIN_CHANGE, reason="outbox_retry_now").count() == 1
    # its page says why, instead of offering the retry
    page = client.get(f"{CHANGELIST}{cancelled.pk}/change/").content.decode()
    assert "consent was revoked cannot be retried" in page
    assert "allowed (select it" in client.get(f"{CHANGELIST}{ordinary.pk}/change/").content.decode()
