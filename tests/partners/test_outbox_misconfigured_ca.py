"""A partner CA file that cannot be read fails the delivery as a typed, retried error (never a crash)."""

import pytest

from partners.models import OutboxMessage
from partners.outbox.services import outbox_deliver, outbox_enqueue
from tests import factories

pytestmark = pytest.mark.django_db


def test_unreadable_ca_file_is_a_retried_failure(settings, tmp_path):
    settings.PARTNER_SERVER_CA_FILE = str(tmp_path / "missing-ca.pem")
    partner = factories.partner()
    message = outbox_enqueue(partner_id=partner.pk, operation="face_delete", ordering_key="face:subj_x",
                             payload={"subject": "subj_x"})
    assert outbox_deliver(message_id=message.pk) == "retry"
    message = OutboxMessage.objects.get(pk=message.pk)
    assert (message.status, message.attempts, message.last_error) == ("pending", 1, "ca_unreadable")
