"""Settings of the audit app, with their defaults, read in one place.

Each may be set in Django settings or, failing that, in the environment:
- AUDIT_SIGNING_KEY: Ed25519 private key, PEM or base64 of the 32-byte seed. Empty in
  development: a key is generated into $SMARTHOME_VAR_DIR/audit-ed25519.pem on first use.
  Production must set it.
- AUDIT_SEAL_BATCH: events per checkpoint at most (default 100000).
- AUDIT_RECONCILE_SKEW_S: clock skew reported by reconciliation (default 5).
- AUDIT_PARTNER_LOG_FETCHER: dotted path of `fetch(partner_id, since, until) -> list[dict]`
  and `partners() -> list[int]` provider (see audit.reconcile); empty = not configured.
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


def seal_batch() -> int:
    return int(_get("AUDIT_SEAL_BATCH", "100000"))


def reconcile_skew_s() -> float:
    return float(_get("AUDIT_RECONCILE_SKEW_S", "5"))


def partner_log_fetcher() -> str:
    return str(_get("AUDIT_PARTNER_LOG_FETCHER", ""))


def is_production() -> bool:
    """settings.PRODUCTION (SMARTHOME_ENV=production): said explicitly, not read from a module name."""
    return bool(getattr(settings, "PRODUCTION", False))
