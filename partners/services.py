"""Writes of the partners app: partner organisations, contracts, credential rotation.

Every function runs in one transaction and records an audit event inside it.
"""

import base64
import ipaddress
import secrets
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext
from oauth2_provider.models import get_application_model

from audit.actions import Action, Outcome
from audit.actors import actor_fields
from audit.services import record
from core.security.identifiers import user_ref
from core.security.roles import SECURITY_ADMIN, has_role
from partners.authentication import forget_partner_certificates, partner_tokens_revoke
from partners.models import (
    Partner,
    PartnerApplication,
    PartnerContract,
    PartnerCredentials,
    public_key_fingerprint,
)
from partners.signals import partner_reinstated, partner_scope_changed

PLATE_KEY_BYTES = 32
SUBJECT_KEY_BYTES = 32
WEBHOOK_SECRET_BYTES = 32


def _audit(*, actor, object_type: str, pk: int, reason: str, partner_id=None, company_id=None):
    record(
        action=Action.ADMIN_CHANGE,
        outcome=Outcome.SUCCESS,
        object_type=object_type,
        object_ref=f"{object_type}:{pk}",
        partner_id=partner_id,
        company_id=company_id,
        reason=reason,
        **actor_fields(actor),
    )


def _scope_changed(sender, partner_id: int) -> None:
    """A partner's contracts or credentials changed (caller's transaction). Once it commits, the
    cached certificate lookups of the partner are forgotten (a rotation may move or drop a
    certificate); `partner_scope_changed` tells the apps above (the access app then rebuilds
    plate tokens and pushes allowlists, also after the commit)."""
    transaction.on_commit(lambda: forget_partner_certificates(partner_id=partner_id))
    partner_scope_changed.send(sender=sender, partner_id=partner_id)


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
        raise ValidationError(
            {"buildings": gettext("Every building must belong to the contract's management company.")})
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
    _scope_changed(PartnerContract, partner.pk)
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
    _scope_changed(PartnerContract, contract.partner_id)
    return contract


CONTRACT_TERMS = ("valid_from", "valid_until", "allows_open", "allows_video", "allows_face", "allows_plate",
                  "purpose", "retention_days", "agreement_ref")


@transaction.atomic
def partner_contract_update(*, contract: PartnerContract, buildings, actor=None, **terms) -> PartnerContract:
    """Change a contract's buildings and terms (CONTRACT_TERMS; partner and company never change).

    Checks as partner_contract_create. Records admin.change and sends partner_scope_changed
    (plate tokens are recomputed and allowlists pushed once this commits)."""
    unknown = set(terms) - set(CONTRACT_TERMS)
    if unknown:
        raise TypeError(f"partner_contract_update() cannot change {', '.join(sorted(unknown))}")
    buildings = list(buildings)
    if any(b.company_id != contract.company_id for b in buildings):
        raise ValidationError(
            {"buildings": gettext("Every building must belong to the contract's management company.")})
    contract = PartnerContract.objects.select_for_update().get(pk=contract.pk)
    for name, value in terms.items():
        setattr(contract, name, value)
    contract.full_clean()
    contract.save()
    contract.buildings.set(buildings)
    _audit(
        actor=actor, object_type="partner_contract", pk=contract.pk, reason="changed",
        partner_id=contract.partner_id, company_id=contract.company_id,
    )
    _scope_changed(PartnerContract, contract.partner_id)
    return contract


@transaction.atomic
def partner_contract_delete(*, contract: PartnerContract, actor=None) -> None:
    """Delete a contract entered by mistake (one that ran its course is ended instead:
    partner_contract_end). Records admin.change and sends partner_scope_changed."""
    partner_id, company_id, pk = contract.partner_id, contract.company_id, contract.pk
    contract.delete()
    _audit(actor=actor, object_type="partner_contract", pk=pk, reason="deleted", partner_id=partner_id,
           company_id=company_id)
    _scope_changed(PartnerContract, partner_id)


PARTNER_FIELDS = ("name", "slug", "api_base_url", "audit_log_url", "server_ca_pem", "active")


@transaction.atomic
def partner_update(*, partner: Partner, actor=None, **changes) -> Partner:
    """Change a partner organisation (PARTNER_FIELDS; suspension has its own services).

    Checks the model's validation. Records admin.change; a change of `active` - which decides
    whether the partner may call us and receives allowlists - sends partner_scope_changed (its
    sites' allowlists are pushed in full once this commits)."""
    unknown = set(changes) - set(PARTNER_FIELDS)
    if unknown:
        raise TypeError(f"partner_update() cannot change {', '.join(sorted(unknown))}")
    partner = Partner.objects.select_for_update().get(pk=partner.pk)
    was_active = partner.active
    for name, value in changes.items():
        setattr(partner, name, value)
    partner.full_clean()
    partner.save()
    _audit(actor=actor, object_type="partner", pk=partner.pk, reason="updated", partner_id=partner.pk)
    if partner.active != was_active:
        _scope_changed(Partner, partner.pk)
    return partner


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
    _scope_changed(PartnerCredentials, partner.pk)
    return IssuedCredentials(credentials=credentials, secrets=issued)


def _cert_fingerprint(cert_pem: str) -> str:
    if not cert_pem:
        return ""
    try:
        cert = x509.load_pem_x509_certificate(cert_pem.encode())
    except ValueError:
        raise ValidationError({"client_cert_pem": gettext("Not a PEM X.509 certificate.")}) from None
    return cert.fingerprint(hashes.SHA256()).hex()


def _validate_credentials(credentials: PartnerCredentials) -> None:
    if not credentials.client_id:
        raise ValidationError({"client_id": gettext("A client id is required.")})
    if not _is_webhook_secret(credentials.outbound_webhook_secret):
        raise ValidationError({"outbound_webhook_secret": gettext("Not a Standard Webhooks secret (whsec_<base64>).")})
    if credentials.partner_public_key_pem:
        try:
            public_key_fingerprint(credentials.partner_public_key_pem)
        except ValueError:
            raise ValidationError({"partner_public_key_pem": gettext("Not a PEM public key.")}) from None
    for cidr in credentials.allowed_cidrs:
        try:
            ipaddress.ip_network(cidr, strict=False)
        except (TypeError, ValueError):
            raise ValidationError(
                {"allowed_cidrs": gettext("%(cidr)s is not an IP network.") % {"cidr": repr(cidr)}}) from None


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
    record(action=Action.SECURITY_PARTNER_SUSPENDED, outcome=Outcome.SUCCESS, **actor_fields(actor),
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
        raise PermissionDenied(gettext("Only a security admin reinstates a partner."))
    Partner.objects.filter(pk=partner.pk).update(suspended_at=None)
    partner_tokens_revoke(partner_id=partner.pk)
    partner.suspended_at = None
    partner_reinstated.send(sender=Partner, partner_id=partner.pk, actor_ref=user_ref(actor))
    record(action=Action.SECURITY_PARTNER_REINSTATED, outcome=Outcome.SUCCESS, **actor_fields(actor),
           object_type="partner", object_ref=f"partner:{partner.pk}",
           partner_id=partner.pk, reason="reinstated")
    return partner


@transaction.atomic
def partner_api_client_issue(*, partner: Partner, client_id: str) -> str:
    """Ensure the OAuth2 client-credentials application `client_id` exists and is bound to `partner`
    (the partner API's callers), give it a fresh secret and return that secret (stored hashed,
    shown only here). Raises ValidationError if the application is bound to another partner."""
    Application = get_application_model()
    application, _ = Application.objects.get_or_create(
        client_id=client_id,
        defaults={"name": f"{partner.slug} partner API", "client_type": Application.CLIENT_CONFIDENTIAL,
                  "authorization_grant_type": Application.GRANT_CLIENT_CREDENTIALS},
    )
    binding, _ = PartnerApplication.objects.get_or_create(application=application, defaults={"partner": partner})
    if binding.partner_id != partner.pk:
        raise ValidationError({"client_id": gettext("This OAuth2 client belongs to another partner.")})
    secret = secrets.token_urlsafe(32)
    application.client_secret = secret
    application.save()
    return secret
