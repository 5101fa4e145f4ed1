"""Reads of the consent app (the consent helper fills these in)."""


def active_face_consent_exists(*, resident_id: int, partner_id: int) -> bool:
    """True while the resident has an unexpired, unrevoked biometric consent for this partner."""
    return False


def resident_id_for_subject(*, partner_id: int, subject_id: str) -> int | None:
    """The resident a partner knows by `subject_id` (pairwise pseudonym), or None."""
    return None
