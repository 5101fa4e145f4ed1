"""The admin's part of a key rotation: export the material for the partner (a file only its private
key opens, fingerprints to read aloud), then retire the previous plate-token key - each step
through the services, audited, and only for the manager's own partners."""

import pytest
from joserfc.jwk import ECKey

from audit.models import AuditEvent
from core.security.identifiers import user_ref
from partners import services as partner_services
from partners.key_material import material_decrypt, spoken
from partners.models import PartnerCredentials
from tests.admin.conftest import login_verified

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/partners/partnercredentials/"


def run_action(client, action, pks):
    return client.post(CHANGELIST, {"action": action, "_selected_action": [str(pk) for pk in pks]})


@pytest.fixture
def partner_with_key(world, dev_pki):
    """Company A's partner, with its JWE public key in its current credentials."""
    partner = world["a"][PartnerCredentials].partner
    partner_services.partner_credentials_rotate(partner=partner,
                                                partner_public_key_pem=dev_pki["partner-jwe.pub.pem"].read_text())
    return partner


def test_the_export_downloads_a_file_only_the_partner_opens_and_shows_fingerprints(
        client, world, users, partner_with_key, dev_pki):
    login_verified(client, users.manager)
    current = PartnerCredentials.objects.current().get(partner=partner_with_key)

    response = run_action(client, "export_key_material", [current.pk])

    assert response.status_code == 200
    assert response["Content-Type"] == "application/jose"
    assert response["Content-Disposition"] == (
        f'attachment; filename="{partner_with_key.slug}-credentials-v{current.version}.jwe"')
    assert "no-store" in response["Cache-Control"]
    body = response.content.decode()
    for secret in (current.plate_token_key, current.webhook_secret, current.client_secret):
        assert secret not in body
    document = material_decrypt(body, [ECKey.import_key(dev_pki["partner-jwe.key"].read_bytes())])
    assert document["secrets"]["plate_token_key"] == current.plate_token_key
    page = client.get(CHANGELIST).content.decode()
    assert spoken(current.plate_token_key_fingerprint) in page
    assert spoken(current.webhook_secret_fingerprint) in page
    assert current.plate_token_key not in page
    event = AuditEvent.objects.filter(object_ref=f"partner_credentials:{current.pk}").latest("id")
    assert (event.reason, event.actor_ref) == ("handed_over", user_ref(users.manager))

    foreign = world["b"][PartnerCredentials]  # another company's partner: not exported
    run_action(client, "export_key_material", [foreign.pk])
    assert PartnerCredentials.objects.get(pk=foreign.pk).handed_over_at is None
    assert not AuditEvent.objects.filter(object_ref=f"partner_credentials:{foreign.pk}", reason="handed_over").exists()


def test_an_export_without_the_partners_key_is_refused(client, world, users):
    login_verified(client, users.manager)
    current = world["a"][PartnerCredentials]

    response = run_action(client, "export_key_material", [current.pk])

    assert response.status_code == 302
    assert "no JWE public key" in client.get(response["Location"]).content.decode()
    assert PartnerCredentials.objects.get(pk=current.pk).handed_over_at is None


def test_rotate_hand_over_and_retire_from_the_admin(client, world, users, partner_with_key):
    login_verified(client, users.manager)
    old = PartnerCredentials.objects.current().get(partner=partner_with_key)
    run_action(client, "export_key_material", [old.pk])

    response = run_action(client, "rotate_credentials", [old.pk])
    page = client.get(response["Location"]).content.decode()
    new = PartnerCredentials.objects.current().get(partner=partner_with_key)
    assert f"{spoken(old.plate_token_key_fingerprint)} is accepted until" in page
    assert "still accepted until" in client.get(f"{CHANGELIST}{old.pk}/change/").content.decode()

    response = run_action(client, "retire_previous_plate_key", [new.pk])  # not handed over yet: refused
    assert "never handed over" in client.get(response["Location"]).content.decode()
    assert PartnerCredentials.objects.get(pk=old.pk).plate_key_retired_at is None

    run_action(client, "export_key_material", [new.pk])
    response = run_action(client, "retire_previous_plate_key", [new.pk])

    page = client.get(response["Location"]).content.decode()
    assert f"plate-token key {spoken(old.plate_token_key_fingerprint)} retired" in page
    assert PartnerCredentials.objects.get(pk=old.pk).plate_key_retired_at is not None
    assert ">retired<" in client.get(f"{CHANGELIST}{old.pk}/change/").content.decode()
    manager = user_ref(users.manager)
    assert list(AuditEvent.objects.filter(partner_id=partner_with_key.pk, object_type="partner_credentials",
                                          actor_ref=manager).order_by("id").values_list("object_ref", "reason")) == [
        (f"partner_credentials:{old.pk}", "handed_over"), (f"partner_credentials:{new.pk}", "rotated"),
        (f"partner_credentials:{new.pk}", "handed_over"), (f"partner_credentials:{old.pk}", "retired"),
    ]
    response = run_action(client, "retire_previous_plate_key", [new.pk])
    assert "no previous plate-token key is in use" in client.get(response["Location"]).content.decode()
