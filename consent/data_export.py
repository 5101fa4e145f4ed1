"""The resident's data export ("everything we hold about you", `GET /api/v1/me/data-export`).

The export is a JSON object of named sections. Each app contributes the sections about what it
holds, without this app importing it (consent sits below access): a section is registered at app
ready with `data_export_section_register(name=..., description=..., provider=...)`, and a
provider is called as `provider(resident_id=...)` and returns JSON-serialisable data.
consent registers its own sections below (`ConsentConfig.ready`); access registers the
resident's profile, residencies, grants, vehicles, guest passes, notifications, remote opens and
history (`access/data_export.py`, `AccessConfig.ready`). `docs/consent.md` lists them.

What a provider must keep to: only this resident's rows; personal data in clear (it is theirs:
names, phone, plates), but never a secret, key, token or ciphertext - no plate tokens, no
pairwise subject ids (the partner's face credential), no photo JWE, no OAuth2 tokens, no
idempotency keys.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from consent.selectors import consent_list, deletion_receipts_for, enrolment_list


@dataclass(frozen=True)
class DataExportSection:
    name: str
    description: str
    provider: Callable[..., object]


_sections: dict[str, DataExportSection] = {}


def data_export_section_register(*, name: str, description: str, provider: Callable[..., object]) -> None:
    """Add a section (idempotent for the same provider; ValueError if the name is taken)."""
    current = _sections.get(name)
    if current is not None and current.provider is not provider:
        raise ValueError(f"data export section {name!r} is already provided by {current.provider!r}")
    _sections[name] = DataExportSection(name=name, description=description, provider=provider)


def data_export_sections() -> tuple[DataExportSection, ...]:
    return tuple(_sections.values())


def data_export_build(*, resident_id: int) -> dict:
    """Every registered section about the resident, in registration order."""
    return {section.name: section.provider(resident_id=resident_id) for section in _sections.values()}


def _consents(*, resident_id: int) -> list[dict]:
    return [
        {
            "id": consent.pk, "partner": consent.partner_id, "partner_name": consent.partner.name,
            "purpose": consent.purpose, "building": consent.building_id, "text_version": consent.text.version,
            "text_language": consent.text.language, "text_sha256": consent.text.sha256,
            "granted_at": consent.granted_at, "retention_until": consent.retention_until,
            "revoked_at": consent.revoked_at, "revoked_reason": consent.revoked_reason, "channel": consent.channel,
            "active": consent.is_active(), "evidence_ip": consent.evidence_ip,
            "evidence_user_agent_sha256": consent.evidence_user_agent_sha256,
        }
        for consent in consent_list(resident_id=resident_id).order_by("granted_at", "id")
    ]


def _consent_texts(*, resident_id: int) -> dict:
    texts = {consent.text for consent in consent_list(resident_id=resident_id)}
    return {text.sha256: {"version": text.version, "language": text.language, "body": text.body}
            for text in sorted(texts, key=lambda t: t.pk)}


def _face_enrolments(*, resident_id: int) -> list[dict]:
    return [
        {"id": enrolment.pk, "partner": enrolment.partner_id, "partner_name": enrolment.partner.name,
         "consent": enrolment.consent_id, "status": enrolment.status, "image_sha256": enrolment.image_sha256,
         "created_at": enrolment.created_at, "updated_at": enrolment.updated_at}
        for enrolment in sorted(enrolment_list(resident_id=resident_id), key=lambda e: e.pk)
    ]


def _deletion_receipts(*, resident_id: int) -> list[dict]:
    return [
        {"partner": receipt.partner_id, "deletion_id": receipt.deletion_id, "confirmed_at": receipt.confirmed_at}
        for receipt in deletion_receipts_for(resident_id=resident_id).order_by("confirmed_at", "id")
    ]


def register_consent_sections() -> None:
    """consent's own sections (called from ConsentConfig.ready)."""
    for name, description, provider in (
        ("consents", "Your consents to face recognition, with the evidence kept (address, user agent hash)",
         _consents),
        ("consent_texts", "The texts you agreed to, by SHA-256", _consent_texts),
        ("face_enrolments", "Your face enrolments at partners and their status (the photo is not kept)",
         _face_enrolments),
        ("deletion_receipts", "Partners' confirmations that they deleted your face", _deletion_receipts),
    ):
        data_export_section_register(name=name, description=description, provider=provider)

