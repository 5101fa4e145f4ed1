"""Settings of the audit app, with their defaults, read in one place.

Each may be set in Django settings (smarthome/settings/base.py reads them from the environment)
or, failing that, in the environment:
- AUDIT_SIGNING_KEY: Ed25519 private key, PEM or base64 of the 32-byte seed. Empty outside
  production: a key is generated into $SMARTHOME_VAR_DIR/audit-ed25519.pem on first use.
  Production (settings.PRODUCTION) must set it.
- AUDIT_VERIFY_KEYS: public keys of retired signing keys (PEM blocks or base64 raw keys):
  what they signed keeps verifying after a rotation.
- AUDIT_SEAL_BATCH: events per seal at most (default 100000).
- AUDIT_SEAL_GAP_TTL_S: how long an event id skipped by a seal (its transaction had not
  committed) is looked for by later seals (default 86400).
- AUDIT_EXPORT_GRACE_S: an export for a window ending at T ends with the first seal at or after
  T + this (default 60): events committed a little after they were recorded are inside.
- AUDIT_RECONCILE_SKEW_S: clock skew reported by reconciliation (default 5).
- AUDIT_PARTNER_LOG_FETCHER: dotted path of `fetch(partner_id, since, until) -> list[dict]`
  and `partners() -> list[int]` provider (see audit.reconcile); empty = not configured.
- AUDIT_REFUSAL_BURST_PER_MIN: refused partner calls from one source with one reason in one
  minute that raise a security alert (default 100).
- AUDIT_SCOPE_CHOICES (a Django setting, wiring rather than configuration): dotted path of
  `choices(user) -> (buildings, partners)`, each a list of (id, label), that the admin's export
  form offers - the buildings and partners of the user's own companies, which only the apps
  above this one know; empty: the form offers none.
"""

import os

from django.conf import settings


def _get(name: str, default: str) -> str:
    value = getattr(settings, name, None)
    if value is None:
        value = os.environ.get(name, default)
    return value


def signing_key_text() -> str:
    return str(_get("AUDIT_SIGNING_KEY", ""))


def verify_keys_text() -> str:
    return str(_get("AUDIT_VERIFY_KEYS", ""))


def seal_batch() -> int:
    return int(_get("AUDIT_SEAL_BATCH", "100000"))


def seal_gap_ttl_s() -> float:
    return float(_get("AUDIT_SEAL_GAP_TTL_S", "86400"))


def export_grace_s() -> float:
    return float(_get("AUDIT_EXPORT_GRACE_S", "60"))


def reconcile_skew_s() -> float:
    return float(_get("AUDIT_RECONCILE_SKEW_S", "5"))


def partner_log_fetcher() -> str:
    return str(_get("AUDIT_PARTNER_LOG_FETCHER", ""))


def refusal_burst_per_min() -> int:
    return int(_get("AUDIT_REFUSAL_BURST_PER_MIN", "100"))


def scope_choices_provider() -> str:
    return str(getattr(settings, "AUDIT_SCOPE_CHOICES", ""))


def is_production() -> bool:
    """The explicit production flag (settings.PRODUCTION); never guessed from a module name."""
    return bool(getattr(settings, "PRODUCTION", False))
