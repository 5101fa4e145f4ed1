"""Handing a rotation's key material to the partner: a file only the partner's private key opens,
with fingerprints to read aloud, and the sandbox partner switching to it."""

import base64
import json

import pytest
from django.core.exceptions import ValidationError
from joserfc.jwk import ECKey, RSAKey

from access.plates import plate_token
from audit.models import AuditEvent
from core.security.identifiers import user_ref
from partners import services as partner_services
from partners.key_material import (
    FORMAT,
    MaterialError,
    material_decrypt,
    material_encrypt,
    secret_fingerprints,
    spoken,
)
from partners.models import PartnerCredentials
from partners.sandbox.control import SandboxControlError
from tests import factories

pytestmark = pytest.mark.django_db

SECRETS = ("client_secret", "plate_token_key", "webhook_secret", "outbound_webhook_secret")


@pytest.fixture
def partner(dev_pki):
    """A partner whose credentials name its JWE public key (the dev PKI's EC key)."""
    partner = factories.partner(with_credentials=False)
    partner_services.partner_credentials_rotate(
        partner=partner, client_id="smarthome", client_secret="sandbox-secret",
        partner_public_key_pem=dev_pki["partner-jwe.pub.pem"].read_text(),
    )
    return partner


def partner_keys(dev_pki) -> list:
    return [ECKey.import_key(dev_pki["partner-jwe.key"].read_bytes()),
            RSAKey.import_key(dev_pki["partner-jwe-rsa.key"].read_bytes())]


def header(compact: str) -> dict:
    segment = compact.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))


def test_the_export_opens_only_with_the_partners_private_key(partner, dev_pki):
    staff = factories.staff_user(superuser=True)
    credentials = PartnerCredentials.objects.current().get(partner=partner)

    export = partner_services.partner_credentials_export(partner=partner, actor=staff)

    assert header(export.jwe) == {"alg": "ECDH-ES+A256KW", "enc": "A256GCM", "cty": "application/json",
                                  "epk": header(export.jwe)["epk"]}
    for name in SECRETS:
        assert getattr(credentials, name) not in export.jwe
    assert credentials.subject_key not in export.jwe
    document = material_decrypt(export.jwe, partner_keys(dev_pki))
    assert document["format"] == FORMAT
    assert (document["partner"], document["credentials_version"], document["client_id"]) == (
        partner.slug, credentials.version, "smarthome")
    assert document["secrets"] == {name: getattr(credentials, name) for name in SECRETS}
    assert "subject_key" not in json.dumps(document)
    # the fingerprints the admin shows are the ones inside
    assert document["fingerprints"] == export.fingerprints == {
        "client_secret": credentials.client_secret_fingerprint,
        "plate_token_key": credentials.plate_token_key_fingerprint,
        "webhook_secret": credentials.webhook_secret_fingerprint,
        "outbound_webhook_secret": credentials.outbound_webhook_secret_fingerprint,
    }
    assert document["previous_plate_key"] is None

    stranger = ECKey.generate_key("P-256", private=True)
    with pytest.raises(MaterialError):
        material_decrypt(export.jwe, [stranger])
    with pytest.raises(MaterialError):  # the partner's RSA key is not the one it was encrypted to
        material_decrypt(export.jwe, partner_keys(dev_pki)[1:])
    segments = export.jwe.split(".")
    segments[3] = ("B" if segments[3][0] == "A" else "A") + segments[3][1:]
    with pytest.raises(MaterialError):
        material_decrypt(".".join(segments), partner_keys(dev_pki))

    stored = PartnerCredentials.objects.get(pk=credentials.pk)
    assert stored.handed_over_at is not None
    event = AuditEvent.objects.filter(object_ref=f"partner_credentials:{credentials.pk}").latest("id")
    assert (event.action, event.reason, event.actor_ref) == ("admin.change", "handed_over", user_ref(staff))


def test_an_export_to_an_rsa_key_uses_rsa_oaep(dev_pki):
    partner = factories.partner(with_credentials=False)
    partner_services.partner_credentials_rotate(
        partner=partner, client_id="smarthome", partner_public_key_pem=dev_pki["partner-jwe-rsa.pub.pem"].read_text(),
    )
    export = partner_services.partner_credentials_export(partner=partner)
    assert header(export.jwe)["alg"] == "RSA-OAEP-256"
    assert material_decrypt(export.jwe, partner_keys(dev_pki))["credentials_version"] == 1


def test_during_an_overlap_the_export_names_the_previous_key_and_its_end(partner, dev_pki):
    old = PartnerCredentials.objects.current().get(partner=partner)
    partner_services.partner_credentials_export(partner=partner)
    partner_services.partner_credentials_rotate(partner=partner)
    export = partner_services.partner_credentials_export(partner=partner)
    old.refresh_from_db()
    assert export.credentials.version == old.version + 1
    assert material_decrypt(export.jwe, partner_keys(dev_pki))["previous_plate_key"] == {
        "credentials_version": old.version, "fingerprint": old.plate_token_key_fingerprint,
        "accepted_until": old.plate_key_accepted_until().isoformat(),
    }


def test_an_export_without_the_partners_public_key_is_refused_and_changes_nothing():
    partner = factories.partner()
    credentials = PartnerCredentials.objects.current().get(partner=partner)
    events = AuditEvent.objects.count()
    with pytest.raises(ValidationError) as refused:
        partner_services.partner_credentials_export(partner=partner)
    assert refused.value.error_dict["partner_public_key_pem"][0].code == "no_public_key"
    assert PartnerCredentials.objects.get(pk=credentials.pk).handed_over_at is None
    assert AuditEvent.objects.count() == events


def test_material_with_a_secret_that_does_not_match_its_fingerprint_is_refused(dev_pki):
    secrets = {"client_secret": "a", "plate_token_key": base64.b64encode(b"k" * 32).decode(),
               "webhook_secret": "whsec_b", "outbound_webhook_secret": "whsec_c"}
    document = {"format": FORMAT, "credentials_version": 1, "secrets": secrets,
                "fingerprints": {**secret_fingerprints(secrets), "webhook_secret": "0" * 16}}
    compact = material_encrypt(document, public_key_pem=dev_pki["partner-jwe.pub.pem"].read_bytes())
    with pytest.raises(MaterialError, match="fingerprint"):
        material_decrypt(compact, partner_keys(dev_pki))


def test_fingerprints_are_read_aloud_in_groups_of_four():
    assert spoken("3f9a12bc8e440d71") == "3f9a 12bc 8e44 0d71"


# --- the sandbox partner receives it -----------------------------------------------------------


@pytest.mark.partner
def test_the_sandbox_switches_to_the_material_it_is_handed(partner, clean_sandbox):
    control = clean_sandbox.control
    first = partner_services.partner_credentials_export(partner=partner)

    answer = control.install_key_material(first.jwe)

    assert answer["credentials_version"] == first.credentials.version
    assert answer["fingerprints"] == {name: spoken(value) for name, value in first.fingerprints.items()}
    assert control.state()["plate_key"] == {"credentials_version": first.credentials.version,
                                           "fingerprint": first.fingerprints["plate_token_key"]}
    assert first.credentials.plate_token_key not in json.dumps(control.state())
    # its token endpoint accepts the client secret it was handed
    session = clean_sandbox.session()
    token = session.post(f"{clean_sandbox.base_url}/oauth/token", data={"grant_type": "client_credentials"},
                         auth=("smarthome", first.credentials.client_secret), timeout=10)
    assert token.status_code == 200

    partner_services.partner_credentials_rotate(partner=partner, client_secret="a-new-client-secret")
    second = partner_services.partner_credentials_export(partner=partner)
    assert control.install_key_material(second.jwe)["previous_plate_key"]["credentials_version"] == 1
    assert control.state()["plate_key"]["credentials_version"] == second.credentials.version
    for secret in ("a-new-client-secret", first.credentials.client_secret):  # the new one, and the one before
        token = session.post(f"{clean_sandbox.base_url}/oauth/token", data={"grant_type": "client_credentials"},
                             auth=("smarthome", secret), timeout=10)
        assert token.status_code == 200

    with pytest.raises(SandboxControlError) as older:
        control.install_key_material(first.jwe)
    assert (older.value.status, json.loads(older.value.body)["error"]) == (409, "superseded")

    stranger = factories.partner(with_credentials=False)
    partner_services.partner_credentials_rotate(
        partner=stranger, client_id="smarthome",
        partner_public_key_pem=ECKey.generate_key("P-256", private=True).as_pem(private=False).decode(),
    )
    foreign = partner_services.partner_credentials_export(partner=stranger)
    with pytest.raises(SandboxControlError) as unopened:
        control.install_key_material(foreign.jwe)
    assert (unopened.value.status, json.loads(unopened.value.body)["error"]) == (400, "undecryptable")
    assert control.state()["plate_key"]["credentials_version"] == second.credentials.version  # unchanged

    control.reset()
    assert control.state()["plate_key"] is None
    token = session.post(f"{clean_sandbox.base_url}/oauth/token", data={"grant_type": "client_credentials"},
                         auth=("smarthome", "a-new-client-secret"), timeout=10)
    assert token.status_code == 401


@pytest.mark.partner
def test_the_sandbox_tokenises_a_plate_under_the_key_it_uses(partner, clean_sandbox):
    """Its camera's token is the service's: an allowlist entry under the token our encoding gives
    (access.plates.plate_token) lets the plate in, in any spelling."""
    control = clean_sandbox.control
    export = partner_services.partner_credentials_export(partner=partner)
    control.install_key_material(export.jwe)
    control.configure_smarthome("https://127.0.0.1:9", decision_timeout_s=0.2)  # nobody answers: local decisions
    token = plate_token(key=export.credentials.plate_token_key_bytes(), plate="А123ВС77")
    response = clean_sandbox.authorized_session().put(
        f"{clean_sandbox.base_url}/v1/sites/building-1/allowlist",
        json={"version": 1, "entries": [{"type": "plate", "token": token, "device_refs": ["gate-1"]}]}, timeout=10,
    )
    assert response.status_code == 200, response.text

    answer = control.arrival("gate-1", "plate", plate="а 123 вс-77")  # Cyrillic, spaced: the same plate

    assert (answer["decision"], answer["source"], answer["plate_key_version"]) == (
        "allow", "local_allowlist", export.credentials.version)
    assert control.arrival("gate-1", "plate", plate="A124BC77")["decision"] == "deny"
