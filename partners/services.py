"""Writes of the partners app: partner organisations, contracts, credential rotation.

Every function runs in one transaction and records an audit event inside it.
"""

import base64
import secrets
from dataclasses import dataclass, field

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from audit.actions import Action, ActorKind, Outcome
from audit.services import record
from core.security.identifiers import user_ref
from core.security.roles import SECURITY_ADMIN, has_role
from partners.authentication import partner_tokens_revoke
from partners.models import Partner, PartnerApplication, PartnerContract, PartnerCredentials
from partners.signals import partner_reinstated, partner_scope_changed

PLATE_KEY_BYTES = 32
SUBJECT_KEY_BYTES = 32
WEBHOOK_SECRET_BYTES = 32


def _actor(actor) -> dict:
    if actor is None:
        return {"actor_kind": ActorKind.SYSTEM, "actor_ref": ""}
    return {"actor_kind": ActorKind.STAFF, "actor_ref": user_ref(actor)}


def _audit(*, actor, object_type: str, pk: int, reason: str, partner_id=None, company_id=None):
    record(
        action=Action.ADMIN_CHANGE,
        outcome=Outcome.SUCCESS,
        object_type=object_type,
        object_ref=f"{object_type}:{pk}",
        partner_id=partner_id,
        company_id=company_id,
        reason=reason,
        **_actor(actor),
    )


@transaction.atomic
def partner_create(*, name: str, slug: str, api_base_url: str, audit_log_url: str = "", actor=None) -> Partner:
    """Create a partner organisation. Checks the model's validation; records admin.change."""
    partner = Partner(name=name, slug=slug, api_base_url=api_base_url, audit_log_url=audit_log_url)
    partner.full_clean()
    partner.save()
    _audit(actor=actor, object_type="partner", pk=partner.pk, reason="created", partner_id=partner.pk)
    return partner


@transaction.atomic
def partner_contract_create(
    *,
    partner: Partner,
    company,
    buildings,
    purpose: str,
    retention_days: int,
    agreement_ref: str,
    allows_open: bool = False,
    allows_video: bool = False,
    allows_face: bool = False,
    allows_plate: bool = False,
    valid_from=None,
    valid_until=None,
    subcontracting_forbidden: bool = True,
    actor=None,
) -> PartnerContract:
    """Create a contract between a partner and a management company.

    Checks: model validation (dates, retention, subcontracting forbidden) and that every
    building belongs to `company` (ValidationError otherwise). Records admin.change and sends
    partner_scope_changed (plate tokens are recomputed).
    """
    buildings = list(buildings)
    foreign = [b.pk for b in buildings if b.company_id != company.pk]
    if foreign:
        raise ValidationError({"buildings": "Every building must belong to the contract's management company."})
    contract = PartnerContract(
        partner=partner,
        company=company,
        allows_open=allows_open,
        allows_video=allows_video,
        allows_face=allows_face,
        allows_plate=allows_plate,
        valid_from=valid_from or timezone.now(),
        valid_until=valid_until,
        purpose=purpose,
        retention_days=retention_days,
        subcontracting_forbidden=subcontracting_forbidden,
        agreement_ref=agreement_ref,
    )
    contract.full_clean()
    contract.save()
    contract.buildings.set(buildings)
    _audit(
        actor=actor, object_type="partner_contract", pk=contract.pk, reason="created",
        partner_id=partner.pk, company_id=company.pk,
    )
    partner_scope_changed.send(sender=PartnerContract, partner_id=partner.pk)
    return contract


@transaction.atomic
def partner_contract_end(*, contract: PartnerContract, at=None, actor=None) -> PartnerContract:
    """End a contract at `at` (default now). Records admin.change; sends partner_scope_changed."""
    contract.valid_until = at or timezone.now()
    contract.full_clean()
    contract.save(update_fields=["valid_until"])
    _audit(
        actor=actor, object_type="partner_contract", pk=contract.pk, reason="ended",
        partner_id=contract.partner_id, company_id=contract.company_id,
    )
    partner_scope_changed.send(sender=PartnerContract, partner_id=contract.partner_id)
    return contract


@transaction.atomic
def partner_contract_changed(*, contract: PartnerContract, actor=None) -> None:
    """Tell the system an already-saved contract changed (e.g. by the admin form):
    records admin.change and sends partner_scope_changed."""
    _audit(
        actor=actor, object_type="partner_contract", pk=contract.pk, reason="changed",
        partner_id=contract.partner_id, company_id=contract.company_id,
    )
    partner_scope_changed.send(sender=PartnerContract, partner_id=contract.partner_id)


@dataclass(frozen=True)
class IssuedCredentials:
    """A new credentials version and its secrets in plain text: shown to the caller ONCE."""

    credentials: PartnerCredentials
    secrets: dict[str, str] = field(repr=False)


def _b64_key(nbytes: int) -> str:
    return base64.b64encode(secrets.token_bytes(nbytes)).decode("ascii")


@transaction.atomic
def partner_credentials_rotate(
    *,
    partner: Partner,
    client_id: str | None = None,
    client_secret: str | None = None,
    client_cert_pem: str | None = None,
    partner_public_key_pem: str | None = None,
    allowed_cidrs: list[str] | None = None,
    outbound_webhook_secret: str | None = None,
    rotate_subject_key: bool = False,
    emergency: bool = False,
    actor=None,
) -> IssuedCredentials:
    """Issue a new credentials version for `partner` and revoke the current one (kept as history).

    Generated: a client secret (unless given), a plate-token key, a webhook secret (the partner's
    events to us) and an outbound webhook secret (our events to the partner; unless given, a
    ``whsec_...`` value - ValidationError if not one). The
    subject key is kept from the previous version unless `rotate_subject_key` (a new one
    changes every pairwise subject id, so the partner's face enrolments must be redone); the
    first version always gets one. Unspecified client id, certificate, public key and CIDRs are
    carried over. Checks the model's validation; the partner row is locked so two rotations
    cannot race (and the one-current constraint would refuse it anyway). Records admin.change
    and sends partner_scope_changed (plate tokens are recomputed with the new key).

    `emergency` (a secret leaked): every earlier version is marked `revoked_without_grace`, so
    its webhook secrets stop verifying and signing at once instead of after
    WEBHOOK_PREVIOUS_SECRET_GRACE_S - the partner's events fail until it has the new secret.
    Recorded with reason `rotated_emergency`.
    Returns the new secrets once, in plain text; afterwards only fingerprints are shown.
    """
    Partner.objects.select_for_update().get(pk=partner.pk)
    previous = PartnerCredentials.objects.current().filter(partner=partner).first()
    last_version = PartnerCredentials.objects.filter(partner=partner).order_by("-version").first()
    issued = {
        "client_secret": client_secret or secrets.token_urlsafe(32),
        "plate_token_key": _b64_key(PLATE_KEY_BYTES),
        "webhook_secret": "whsec_" + _b64_key(WEBHOOK_SECRET_BYTES),
        "outbound_webhook_secret": outbound_webhook_secret or "whsec_" + _b64_key(WEBHOOK_SECRET_BYTES),
    }
    if previous is None or rotate_subject_key:
        issued["subject_key"] = _b64_key(SUBJECT_KEY_BYTES)
    subject_key = issued.get("subject_key") or previous.subject_key

    def carried(value, attr, default):
        if value is not None:
            return value
        return getattr(previous, attr) if previous is not None else default

    cert_pem = carried(client_cert_pem, "client_cert_pem", "")
    credentials = PartnerCredentials(
        partner=partner,
        version=(last_version.version + 1) if last_version else 1,
        client_id=carried(client_id, "client_id", ""),
        client_secret=issued["client_secret"],
        client_cert_pem=cert_pem,
        client_cert_fingerprint=_cert_fingerprint(cert_pem),
        partner_public_key_pem=carried(partner_public_key_pem, "partner_public_key_pem", ""),
        plate_token_key=issued["plate_token_key"],
        subject_key=subject_key,
        webhook_secret=issued["webhook_secret"],
        outbound_webhook_secret=issued["outbound_webhook_secret"],
        allowed_cidrs=list(carried(allowed_cidrs, "allowed_cidrs", [])),
    )
    _validate_credentials(credentials)
    if previous is not None:
        previous.revoked_at = timezone.now()
        previous.save(update_fields=["revoked_at"])
    if emergency:
        PartnerCredentials.objects.filter(partner=partner, revoked_without_grace=False).update(
            revoked_without_grace=True
        )
    credentials.full_clean()
    credentials.save()
    _audit(
        actor=actor, object_type="partner_credentials", pk=credentials.pk,
        reason="rotated_emergency" if emergency else "rotated", partner_id=partner.pk,
    )
    partner_scope_changed.send(sender=PartnerCredentials, partner_id=partner.pk)
    return IssuedCredentials(credentials=credentials, secrets=issued)


def _cert_fingerprint(cert_pem: str) -> str:
    if not cert_pem:
        return ""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    try:
        cert = x509.load_pem_x509_certificate(cert_pem.encode())
    except ValueError:
        raise ValidationError({"client_cert_pem": "Not a PEM X.509 certificate."}) from None
    return cert.fingerprint(hashes.SHA256()).hex()


def _validate_credentials(credentials: PartnerCredentials) -> None:
    import ipaddress

    from partners.models import public_key_fingerprint

    if not credentials.client_id:
        raise ValidationError({"client_id": "A client id is required."})
    if not _is_webhook_secret(credentials.outbound_webhook_secret):
        raise ValidationError({"outbound_webhook_secret": "Not a Standard Webhooks secret (whsec_<base64>)."})
    if credentials.partner_public_key_pem:
        try:
            public_key_fingerprint(credentials.partner_public_key_pem)
        except ValueError:
            raise ValidationError({"partner_public_key_pem": "Not a PEM public key."}) from None
    for cidr in credentials.allowed_cidrs:
        try:
            ipaddress.ip_network(cidr, strict=False)
        except (TypeError, ValueError):
            raise ValidationError({"allowed_cidrs": f"{cidr!r} is not an IP network."}) from None


def _is_webhook_secret(value: str) -> bool:
    if not value.startswith("whsec_"):
        return False
    try:
        return len(base64.b64decode(value.removeprefix("whsec_"), validate=True)) >= 16
    except ValueError:
        return False


# --- suspension ---------------------------------------------------------------------------


@transaction.atomic
def partner_suspend(*, partner: Partner | None = None, partner_id: int | None = None, reason: str,
                    actor=None) -> Partner:
    """Suspend a partner: every call is refused and its access tokens expire now.

    By anomaly detection (`access.anomalies`, no actor) or a security admin from the admin.
    Idempotent. Records `security.partner_suspended`."""
    partner_id = partner.pk if partner is not None else partner_id
    locked = Partner.objects.select_for_update().get(pk=partner_id)
    if locked.suspended_at is None:
        locked.suspended_at = timezone.now()
        locked.save(update_fields=["suspended_at"])
    partner_tokens_revoke(partner_id=partner_id)
    record(action=Action.SECURITY_PARTNER_SUSPENDED, outcome=Outcome.SUCCESS,
           actor_kind=ActorKind.STAFF if actor else ActorKind.SYSTEM, actor_ref=user_ref(actor) if actor else "",
           object_type="partner", object_ref=f"partner:{partner_id}", partner_id=partner_id, reason=reason)
    return locked


@transaction.atomic
def partner_reinstate(*, partner: Partner, actor) -> Partner:
    """A security admin lifts a suspension (the partner then fetches new tokens).

    Raises PermissionDenied unless `actor` has the security-admin role (or is a superuser);
    nothing changes then. Expires the partner's tokens once more: one issued while it was
    suspended carries no scope, and a 401 (not a 403) tells the partner to fetch a new one.
    Records `security.partner_reinstated` and sends `partner_reinstated` (the access app
    resolves the partner's open security alerts: resolved_at, resolved_by = the admin's
    pseudonymous ref)."""
    if not (actor.is_superuser or has_role(actor, SECURITY_ADMIN)):
        raise PermissionDenied("Only a security admin reinstates a partner.")
    Partner.objects.filter(pk=partner.pk).update(suspended_at=None)
    partner_tokens_revoke(partner_id=partner.pk)
    partner.suspended_at = None
    partner_reinstated.send(sender=Partner, partner_id=partner.pk, actor_ref=user_ref(actor))
    record(action=Action.SECURITY_PARTNER_REINSTATED, outcome=Outcome.SUCCESS, actor_kind=ActorKind.STAFF,
           actor_ref=user_ref(actor), object_type="partner", object_ref=f"partner:{partner.pk}",
           partner_id=partner.pk, reason="reinstated")
    return partner


@transaction.atomic
def partner_api_client_issue(*, partner: Partner, client_id: str) -> str:
    """Ensure the OAuth2 client-credentials application `client_id` exists and is bound to `partner`
    (the partner API's callers), give it a fresh secret and return that secret (stored hashed,
    shown only here). Raises ValidationError if the application is bound to another partner."""
    from oauth2_provider.models import get_application_model

    Application = get_application_model()
    application, _ = Application.objects.get_or_create(
        client_id=client_id,
        defaults={"name": f"{partner.slug} partner API", "client_type": Application.CLIENT_CONFIDENTIAL,
                  "authorization_grant_type": Application.GRANT_CLIENT_CREDENTIALS},
    )
    binding, _ = PartnerApplication.objects.get_or_create(application=application, defaults={"partner": partner})
    if binding.partner_id != partner.pk:
        raise ValidationError({"client_id": "This OAuth2 client belongs to another partner."})
    secret = secrets.token_urlsafe(32)
    application.client_secret = secret
    application.save()
    return secret
