"""Signed consent receipts: canonical JSON signed with the receipts' own Ed25519 key.

The receipt holds pseudonymous references only. Its key is not the audit key: a keyring of its
own (core.crypto.signing; settings CONSENT_RECEIPT_SIGNING_KEY and
CONSENT_RECEIPT_SIGNING_KEY_RETIRED), so the two rotate independently and a leaked receipt key
cannot sign audit checkpoints. Each receipt names its key (`signature.key_id` = SHA-256 of the raw
public key); verification looks that key up among the current and retired public keys, so a
rotation does not break receipts issued before it. Verify offline: remove `signature`, serialise
the rest with sorted keys and no whitespace (UTF-8), and check the Ed25519 signature against the
key with that id published at `GET /api/v1/consents/receipt-keys`.
"""

import json

from audit.canonical import format_time
from consent.models import Consent
from core.crypto.signing import SigningKeyring, key_id, signature_verifies, signing_keyring
from core.security.identifiers import pseudonymous_ref

RECEIPT_TYPE = "smarthome-consent-receipt/v1"
KEY_SETTING = "CONSENT_RECEIPT_SIGNING_KEY"
DEV_KEY_FILE = "consent-receipt-ed25519.pem"


def receipt_keyring() -> SigningKeyring:
    return signing_keyring(KEY_SETTING, dev_file=DEV_KEY_FILE)


def _time(value) -> str | None:
    return format_time(value) if value is not None else None


def canonical(document: dict) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def consent_receipt(*, consent: Consent) -> dict:
    body = {
        "type": RECEIPT_TYPE,
        "consent_ref": consent.ref,
        "resident_ref": pseudonymous_ref("resident", consent.resident_id),
        "partner": consent.partner.slug,
        "purpose": consent.purpose,
        "text_version": consent.text.version,
        "text_language": consent.text.language,
        "text_sha256": consent.text.sha256,
        "channel": consent.channel,
        "granted_at": _time(consent.granted_at),
        "retention_until": _time(consent.retention_until),
        "revoked_at": _time(consent.revoked_at),
        "revoked_reason": consent.revoked_reason or None,
    }
    signed_by, signature = receipt_keyring().sign(canonical(body))
    return {**body, "signature": {"alg": "Ed25519", "key_id": signed_by, "value": signature}}


def receipt_verifies(receipt: dict, public_key=None) -> bool:
    """True when the receipt's signature verifies under the key it names - one of the receipt
    keyring's (current or retired), or `public_key` when given (an auditor's own copy)."""
    signature = receipt.get("signature")
    if not isinstance(signature, dict) or signature.get("alg") != "Ed25519":
        return False
    body = canonical({k: v for k, v in receipt.items() if k != "signature"})
    if public_key is not None:
        return signature.get("key_id") == key_id(public_key) and signature_verifies(
            public_key, body, signature.get("value")
        )
    return receipt_keyring().verify(body, signature.get("value"), key_id=signature.get("key_id"))
