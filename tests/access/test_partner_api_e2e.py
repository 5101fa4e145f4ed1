"""End to end: the sandbox partner asks for decisions and sends events through nginx (mTLS),
with a client-credentials token it got from our /o/token/ through the same listener."""


import pytest
from django.utils import timezone
from oauth2_provider.models import get_access_token_model, get_application_model

from access.models import Device, VehiclePlateToken
from partners import services as partner_services
from partners.models import InboundWebhook, PartnerApplication, PartnerTokenBinding
from tests import factories
from tests.partners import outbox_fixtures

pytestmark = [pytest.mark.partner, pytest.mark.django_db(transaction=True)]
client_settings = outbox_fixtures.client_settings
sandbox_partner = outbox_fixtures.sandbox_partner
linked_sandbox_partner = outbox_fixtures.linked_sandbox_partner


def test_sandbox_gets_a_bound_token_decides_and_sends_events(proxy, clean_sandbox, dev_pki):
    partner = factories.partner(with_credentials=False)
    issued = partner_services.partner_credentials_rotate(
        partner=partner, client_id="smarthome", client_cert_pem=dev_pki["partner-client.pem"].read_text(),
        allowed_cidrs=["127.0.0.0/8"],
    )
    Application = get_application_model()
    app = Application.objects.create(
        name="sandbox", client_id="sandbox-partner", client_secret="sandbox-secret-0123456789",
        client_type=Application.CLIENT_CONFIDENTIAL, authorization_grant_type=Application.GRANT_CLIENT_CREDENTIALS,
    )
    PartnerApplication.objects.create(partner=partner, application=app)
    building = factories.building()
    factories.contract(partner_=partner, company_=building.company, buildings=[building])
    barrier = factories.device(building_=building, partner_=partner, kind="barrier", partner_device_ref="gate-1")
    resident = factories.resident(unit_=factories.unit(building_=building))
    factories.grant(resident_=resident, building_=building)
    plate = VehiclePlateToken.objects.get(vehicle=factories.vehicle(resident_=resident), partner=partner).token

    base = f"https://localhost:{proxy.partner_port}"
    clean_sandbox.control.configure_smarthome(
        base, token_url=f"{base}/o/token/", client_id="sandbox-partner", client_secret="sandbox-secret-0123456789",
        webhook_secret=issued.secrets["webhook_secret"],
    )
    allowed = clean_sandbox.control.arrival("gate-1", "plate", plate)
    assert (allowed["decision"], allowed["reason"], allowed["source"]) == ("allow", "granted", "smarthome")
    assert PartnerTokenBinding.objects.count() == 1  # the token is bound to the sandbox's certificate
    denied = clean_sandbox.control.arrival("gate-1", "plate", "unknownplatetoken000")
    assert (denied["decision"], denied["reason"], denied["source"]) == ("deny", "unknown_credential", "smarthome")

    sent = clean_sandbox.control.emit_event("device.online", {"device_ref": "gate-1"})
    assert sent["http_status"] == 200
    assert Device.objects.get(pk=barrier.pk).online
    assert InboundWebhook.objects.get().event_type == "device.online"
    replay = clean_sandbox.control.emit_event("device.offline", {"device_ref": "gate-1"},
                                             webhook_id=sent["webhook_id"])
    assert replay["http_status"] == 200
    assert Device.objects.get(pk=barrier.pk).online  # the replayed id was not processed again


def test_after_reinstatement_the_sandbox_fetches_a_fresh_token(linked_sandbox_partner, clean_sandbox):
    """Suspension revokes the partner's tokens; after a reinstatement the sandbox's cached token
    answers 401, and the sandbox fetches a new one and retries instead of falling back to its
    local allowlist for ever."""
    partner = linked_sandbox_partner
    building = factories.building()
    factories.contract(partner_=partner, company_=building.company, buildings=[building])
    factories.device(building_=building, partner_=partner, kind="barrier", partner_device_ref="gate-r")
    resident = factories.resident(unit_=factories.unit(building_=building))
    factories.grant(resident_=resident, building_=building)
    plate = VehiclePlateToken.objects.get(vehicle=factories.vehicle(resident_=resident), partner=partner).token
    AccessToken = get_access_token_model()
    tokens = AccessToken.objects.filter(application__partner_binding__partner=partner)

    first = clean_sandbox.control.arrival("gate-r", "plate", plate)
    assert (first["decision"], first["reason"], first["source"]) == ("allow", "granted", "smarthome")
    revoked = tokens.get()

    partner_services.partner_suspend(partner=partner, reason="test")
    assert not tokens.filter(expires__gt=timezone.now()).exists()
    during = clean_sandbox.control.arrival("gate-r", "plate", plate)
    assert during["source"] == "local_allowlist"  # refused while suspended: the barrier decides alone

    partner_services.partner_reinstate(partner=partner, actor=factories.staff_user(superuser=True))
    assert not tokens.filter(expires__gt=timezone.now()).exists()  # one got while suspended has no scope
    after = clean_sandbox.control.arrival("gate-r", "plate", plate)
    assert (after["decision"], after["reason"], after["source"]) == ("allow", "granted", "smarthome")
    fresh = tokens.exclude(pk=revoked.pk)
    assert fresh.filter(expires__gt=timezone.now()).exists()
    assert PartnerTokenBinding.objects.filter(access_token__in=fresh).exists()  # bound to its certificate
    again = clean_sandbox.control.arrival("gate-r", "plate", plate)
    assert again["source"] == "smarthome"
