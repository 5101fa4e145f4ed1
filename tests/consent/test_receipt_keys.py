"""Consent receipts have their own Ed25519 keyring: key id in each receipt, old receipts verify after a rotation."""

import base64

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from rest_framework.test import APIClient

from audit import signing as audit_signing
from consent import services
from consent.receipts import canonical, consent_receipt, receipt_keyring, receipt_verifies
from core.crypto.signing import key_id, raw_public_bytes
from tests import factories

OLD, NEW = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()


def seed(key: Ed25519PrivateKey) -> str:
    return base64.b64encode(
        key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())
    ).decode()


def public(key: Ed25519PrivateKey) -> str:
    return base64.b64encode(raw_public_bytes(key.public_key())).decode()


@pytest.fixture
def consent():
    unit = factories.unit()
    resident = factories.resident(unit_=unit)
    contract = factories.contract(company_=unit.building.company, buildings=[unit.building])
    text = services.consent_text_publish(version="1", body="Я даю согласие на обработку изображения лица.")
    return services.consent_give(resident_id=resident.pk, company_id=resident.company_id,
                                 partner=contract.partner, text=text)


@pytest.mark.django_db
def test_receipts_are_signed_with_their_own_key_not_the_audit_key(settings, consent):
    settings.CONSENT_RECEIPT_SIGNING_KEY = seed(NEW)
    receipt = consent_receipt(consent=consent)
    assert receipt["signature"]["key_id"] == key_id(NEW.public_key()) == receipt_keyring().current_key_id
    audit_key = audit_signing.public_key()
    assert receipt["signature"]["key_id"] != audit_signing.key_id(audit_key)
    assert receipt_verifies(receipt)
    assert not receipt_verifies(receipt, audit_key)  # the audit key did not sign it


@pytest.mark.django_db
def test_a_rotation_keeps_old_receipts_verifiable_until_their_key_is_dropped(settings, consent):
    settings.CONSENT_RECEIPT_SIGNING_KEY = seed(OLD)
    old_receipt = consent_receipt(consent=consent)

    settings.CONSENT_RECEIPT_SIGNING_KEY = seed(NEW)  # rotated: the old public key is retired
    settings.CONSENT_RECEIPT_SIGNING_KEY_RETIRED = public(OLD)
    new_receipt = consent_receipt(consent=consent)
    assert new_receipt["signature"]["key_id"] == key_id(NEW.public_key())
    assert receipt_verifies(old_receipt)
    assert receipt_verifies(new_receipt)
    # a retired key verifies only what it signed; it signs nothing new
    assert not receipt_verifies({**new_receipt, "signature": {**new_receipt["signature"],
                                                               "key_id": key_id(OLD.public_key())}})

    settings.CONSENT_RECEIPT_SIGNING_KEY_RETIRED = ""
    assert not receipt_verifies(old_receipt)
    assert receipt_verifies(new_receipt)


@pytest.mark.django_db
def test_tampered_forged_or_unknown_key_receipts_do_not_verify(settings, consent):
    settings.CONSENT_RECEIPT_SIGNING_KEY = seed(NEW)
    receipt = consent_receipt(consent=consent)
    assert not receipt_verifies({**receipt, "retention_until": "2099-01-01T00:00:00.000000Z"})
    assert not receipt_verifies({**receipt, "signature": {**receipt["signature"], "value": "x" * 88}})
    assert not receipt_verifies({**receipt, "signature": {**receipt["signature"], "key_id": "0" * 64}})
    assert not receipt_verifies({k: v for k, v in receipt.items() if k != "signature"})
    impostor = Ed25519PrivateKey.generate()
    body = canonical({k: v for k, v in receipt.items() if k != "signature"})
    forged = {**receipt, "signature": {"alg": "Ed25519", "key_id": key_id(impostor.public_key()),
                                       "value": base64.b64encode(impostor.sign(body)).decode()}}
    assert not receipt_verifies(forged)


@pytest.mark.django_db
def test_the_public_keys_are_published_and_verify_a_receipt_offline(settings, consent):
    settings.CONSENT_RECEIPT_SIGNING_KEY = seed(NEW)
    settings.CONSENT_RECEIPT_SIGNING_KEY_RETIRED = public(OLD)
    receipt = consent_receipt(consent=consent)
    response = APIClient().get("/api/v1/consents/receipt-keys")
    assert response.status_code == 200
    keys = {key["key_id"]: key for key in response.json()["keys"]}
    assert {(k, v["status"]) for k, v in keys.items()} == {
        (key_id(NEW.public_key()), "current"), (key_id(OLD.public_key()), "retired"),
    }
    published = serialization.load_pem_public_key(keys[receipt["signature"]["key_id"]]["public_key_pem"].encode())
    body = canonical({k: v for k, v in receipt.items() if k != "signature"})
    published.verify(base64.b64decode(receipt["signature"]["value"]), body)  # raises if it does not verify
