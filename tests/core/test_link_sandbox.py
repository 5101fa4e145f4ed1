"""`manage.py link_sandbox` (run by `make run`) points the running sandbox at our partner API."""

import io

import pytest
from django.core.management import CommandError, call_command

from partners.models import PartnerApplication
from partners.services import partner_credentials_rotate
from tests import factories

pytestmark = [pytest.mark.partner, pytest.mark.django_db]


def test_links_the_sandbox_without_printing_secrets(clean_sandbox, dev_pki):
    partner = factories.partner(with_credentials=False, slug="sandbox")
    partner_credentials_rotate(partner=partner, client_id="smarthome",
                               client_cert_pem=dev_pki["partner-client.pem"].read_text(), allowed_cidrs=["127.0.0.0/8"])
    out = io.StringIO()
    for _ in range(2):  # re-running issues a fresh client secret for the same application
        call_command("link_sandbox", "--control-url", clean_sandbox.control.base_url,
                     "--partner-url", "https://localhost:9444", stdout=out)
    link = clean_sandbox.control.smarthome()
    assert (link["base_url"], link["token_url"], link["client_id"]) == (
        "https://localhost:9444", "https://localhost:9444/o/token/", "sandbox-partner")
    assert link["has_client_secret"]
    assert link["has_webhook_secret"]
    assert link["has_outbound_webhook_secret"]
    assert PartnerApplication.objects.get(application__client_id="sandbox-partner").partner == partner
    assert "secret" not in out.getvalue().replace("client 'sandbox-partner'", "")


def test_without_a_seeded_sandbox_partner_it_says_so(clean_sandbox):
    with pytest.raises(CommandError, match="seed_demo"):
        call_command("link_sandbox", "--control-url", clean_sandbox.control.base_url)
