"""End to end: the sandbox partner asks for decisions and sends events through nginx (mTLS),
with a client-credentials token it got from our /o/token/ through the same listener."""


import pytest
from oauth2_provider.models import get_application_model

from access.models import Device, VehiclePlateToken
from partners import services as partner_services
from partners.models import InboundWebhook, PartnerApplication, PartnerTokenBinding
from tests import factories

pytestmark = [pytest.mark.partner, pytest.mark.django_db(transaction=True)]


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
