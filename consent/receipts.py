"""Signed consent receipts: canonical JSON signed with the service's Ed25519 (audit) key.

The receipt holds pseudonymous references only. Verify: remove `signature`, serialise the rest
with sorted keys and no whitespace (UTF-8), and check the Ed25519 signature against the key
published by the audit app (`key_id` = SHA-256 of the raw public key).
"""

import json

from audit import signing
from audit.canonical import format_time
from consent.models import Consent
from core.security.identifiers import pseudonymous_ref

RECEIPT_TYPE = "smarthome-consent-receipt/v1"


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
    key_id, signature = signing.sign(canonical(body))
    return {**body, "signature": {"alg": "Ed25519", "key_id": key_id, "value": signature}}


def receipt_verifies(receipt: dict, public_key=None) -> bool:
    body = {k: v for k, v in receipt.items() if k != "signature"}
    return signing.verify(canonical(body), receipt.get("signature", {}).get("value", ""), public_key)
