"""Partner API authentication: client certificate, IP allowlist, certificate-bound OAuth2 token, scopes."""

import datetime

import pytest
from django.utils import timezone
from oauth2_provider.models import get_access_token_model

from audit.models import AuditEvent
from partners.authentication import partner_scopes, partner_tokens_revoke
from partners.models import PartnerTokenBinding
from tests import factories
from tests.partners import partner_api
from tests.partners.partner_api import OUTSIDE_IP, make_partner_caller

pytestmark = pytest.mark.django_db
partner_api_settings = partner_api.partner_api_settings
partner_caller = partner_api.partner_caller

URL = "/partner/v1/access-decisions"


@pytest.fixture
def device(partner_caller):
    building = factories.building()
    factories.contract(partner_=partner_caller.partner, company_=building.company, buildings=[building])
    return factories.device(building_=building, partner_=partner_caller.partner, kind="barrier")


def body(device_ref="dev-unknown"):
    return {
        "device_ref": device_ref, "credential": {"type": "plate", "token": "A" * 43},
        "request_id": "req-1", "observed_at": timezone.now().isoformat(),
    }


def decisions_recorded() -> int:
    return AuditEvent.objects.filter(action="access.decision").count()


def test_bound_token_with_its_certificate_is_accepted(partner_caller, device):
    response = partner_caller.post(URL, body(device.partner_device_ref))
    assert response.status_code == 200, response.content
    assert response.json()["decision"] == "deny"
    assert decisions_recorded() == 1


def test_token_is_bound_to_the_certificate_x5t(partner_caller, dev_pki):
    from partners.devcerts import x5t_s256

    binding = PartnerTokenBinding.objects.get()
    assert binding.x5t_s256 == x5t_s256(dev_pki["partner-client.pem"].read_bytes())


def test_token_scopes_are_the_partner_scopes(partner_caller):
    token = get_access_token_model().objects.get(application__client_id=partner_caller.client_id)
    assert set(token.scope.split()) == {"access:decide", "events:write"}
    assert partner_scopes(token.application) == ["access:decide", "events:write"]


def test_no_certificate_is_401(partner_caller, device):
    response = partner_caller.post(URL, body(device.partner_device_ref), cert=None)
    assert response.status_code == 401
    assert response["Content-Type"] == "application/problem+json"
    assert decisions_recorded() == 0


def test_unregistered_certificate_is_401(partner_caller, device, dev_pki):
    response = partner_caller.post(URL, body(device.partner_device_ref),
                                   cert=dev_pki["rogue-client.pem"].read_text())
    assert response.status_code == 401
    assert decisions_recorded() == 0


def test_token_issued_without_certificate_is_401(partner_caller, device):
    unbound = partner_caller.fetch_token(cert=None)["access_token"]
    response = partner_caller.post(URL, body(device.partner_device_ref), token=unbound)
    assert response.status_code == 401
    assert "not bound" in response.json()["detail"]
    assert decisions_recorded() == 0


def test_token_presented_with_another_partners_certificate_is_401(partner_caller, device, dev_pki):
    other = make_partner_caller(dev_pki["smarthome-client.pem"]).login()
    # other's certificate, other's address, but partner_caller's token
    response = other.post(URL, body(device.partner_device_ref), token=partner_caller.token)
    assert response.status_code == 401
    assert decisions_recorded() == 0


def test_token_bound_to_another_certificate_is_401(partner_caller, device, dev_pki):
    # the same partner re-registers a new certificate: tokens bound to the old one stop working
    from partners.authentication import forget_certificate
    from partners.services import partner_credentials_rotate

    issued = partner_credentials_rotate(partner=partner_caller.partner,
                                        client_cert_pem=dev_pki["smarthome-client.pem"].read_text())
    forget_certificate(issued.credentials.client_cert_fingerprint)
    new_cert = dev_pki["smarthome-client.pem"].read_text()
    response = partner_caller.post(URL, body(device.partner_device_ref), cert=new_cert)
    assert response.status_code == 401
    assert decisions_recorded() == 0


def test_missing_or_garbage_token_is_401(partner_caller, device):
    assert partner_caller.post(URL, body(device.partner_device_ref), token=None).status_code == 401
    assert partner_caller.post(URL, body(device.partner_device_ref), token="garbage").status_code == 401
    assert decisions_recorded() == 0


def test_expired_token_is_401(partner_caller, device):
    get_access_token_model().objects.update(expires=timezone.now() - datetime.timedelta(seconds=1))
    assert partner_caller.post(URL, body(device.partner_device_ref)).status_code == 401


def test_ip_outside_allowlist_is_403_and_nothing_recorded(partner_caller, device, django_assert_max_num_queries):
    before = AuditEvent.objects.count()
    assert partner_caller.post(URL, body(device.partner_device_ref), ip=OUTSIDE_IP).status_code == 403
    with django_assert_max_num_queries(0):  # the certificate lookup is cached: no database work at all
        response = partner_caller.post(URL, body(device.partner_device_ref), ip=OUTSIDE_IP)
    assert response.status_code == 403
    assert response.json()["type"].endswith("/ip-not-allowed")
    assert AuditEvent.objects.count() == before


def test_header_certificate_from_untrusted_peer_is_ignored(partner_caller, device, settings):
    settings.TRUSTED_PROXY_CIDRS = []
    response = partner_caller.post(URL, body(device.partner_device_ref))
    assert response.status_code == 401
    assert decisions_recorded() == 0


def test_wrong_scope_is_403(partner_caller, device):
    narrow = partner_caller.fetch_token(scope="events:write")["access_token"]
    response = partner_caller.post(URL, body(device.partner_device_ref), token=narrow)
    assert response.status_code == 403
    assert response.json()["type"].endswith("/missing-scope")
    assert decisions_recorded() == 0


def test_suspended_partner_is_refused(partner_caller, device):
    partner_caller.partner.suspended_at = timezone.now()
    partner_caller.partner.save(update_fields=["suspended_at"])
    response = partner_caller.post(URL, body(device.partner_device_ref))
    assert response.status_code == 403
    assert decisions_recorded() == 0


def test_revoked_tokens_are_refused(partner_caller, device):
    assert partner_tokens_revoke(partner_id=partner_caller.partner.pk) == 1
    assert partner_caller.post(URL, body(device.partner_device_ref)).status_code == 401


def test_unbound_application_gets_no_scope(partner_caller):
    from oauth2_provider.models import get_application_model

    app = get_application_model().objects.create(
        name="stray", client_id="stray", client_type="confidential", authorization_grant_type="client-credentials",
    )
    assert partner_scopes(app) == []
