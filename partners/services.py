"""Writes of the partners app: partner organisations, contracts, credential rotation.

Every function runs in one transaction and records an audit event inside it.
"""

import base64
import datetime
import ipaddress
import secrets
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from django.conf import settings
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
from partners.key_material import FORMAT, PLATE_TOKEN, SECRET_FIELDS, material_encrypt, secret_fingerprints
from partners.models import (
    Partner,
    PartnerApplication,
    PartnerContract,
    PartnerCredentials,
    public_key_fingerprint,
)
from partners.signals import partner_reinstated, partner_scope_changed, plate_keys_retired

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
    and sends partner_scope_changed (plate tokens under the new key are added and allowlists
    pushed once this commits).

    Plate-token keys: the previous version's key stays accepted - decisions, allowlists - for
    its overlap (PLATE_TOKEN_KEY_OVERLAP_S, or until `partner_plate_key_retire`) if its material
    was handed over to the partner (`partner_credentials_export`); a key never handed over, and
    any older key still in an overlap, is retired with the rotation (`_plate_keys_retire`).

    `emergency` (a secret leaked): every earlier version is marked `revoked_without_grace`, so
    its webhook secrets stop verifying and signing at once instead of after
    WEBHOOK_PREVIOUS_SECRET_GRACE_S - the partner's events fail until it has the new secret -
    and every earlier plate-token key is retired at once (tokens under it are unknown from the
    commit; the partner's cars are unknown until it has the new key).
    Recorded with reason `rotated_emergency`.
    Returns the new secrets once, in plain text; afterwards only fingerprints are shown (the
    partner gets them through `partner_credentials_export`).
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
    retiring = PartnerCredentials.objects.filter(
        partner=partner, revoked_at__isnull=False, plate_key_retired_at__isnull=True
    )
    if not emergency and previous is not None and previous.handed_over_at is not None:
        retiring = retiring.exclude(pk=previous.pk)  # its overlap begins
    _plate_keys_retire(partner_id=partner.pk, versions=retiring, actor=actor, reason="retired")
    _scope_changed(PartnerCredentials, partner.pk)
    return IssuedCredentials(credentials=credentials, secrets=issued)


def _plate_keys_retire(*, partner_id: int, versions, actor, reason: str) -> list[PartnerCredentials]:
    """Retire the plate-token keys of `versions` (revoked credentials; caller's transaction):
    mark them, record admin.change `reason` for each key the partner may hold (one it was handed
    over), and send plate_keys_retired so that their tokens go in this transaction."""
    retired = list(versions)
    if not retired:
        return []
    now = timezone.now()
    PartnerCredentials.objects.filter(pk__in=[c.pk for c in retired]).update(plate_key_retired_at=now)
    for credentials in retired:
        credentials.plate_key_retired_at = now
        if credentials.handed_over_at is not None:
            _audit(actor=actor, object_type="partner_credentials", pk=credentials.pk, reason=reason,
                   partner_id=partner_id)
    plate_keys_retired.send(sender=PartnerCredentials, partner_id=partner_id,
                            versions=sorted(c.version for c in retired))
    return retired


@transaction.atomic
def partner_plate_key_retire(*, partner: Partner, actor=None, force: bool = False) -> list[PartnerCredentials]:
    """End the overlap of a rotation: decisions stop accepting plate tokens under the partner's
    previous plate-token key(s), and its allowlists lose their entries.

    Refused (ValidationError `not_handed_over`, nothing changes) while the current key material
    was never handed over to the partner - it would have no key that still works - unless
    `force`. Marks each previous key retired and records admin.change `retired` for it; its
    tokens are deleted in this transaction (an old-key token is `unknown_credential` from the
    commit) and partner_scope_changed pushes the full allowlists once it commits. Idempotent:
    returns the versions retired (none when no key was in an overlap)."""
    Partner.objects.select_for_update().get(pk=partner.pk)
    current = PartnerCredentials.objects.current().filter(partner=partner).first()
    if current is None:
        raise ValidationError({"plate_token_key": ValidationError(gettext("The partner has no current credentials."),
                                                                  code="no_credentials")})
    if current.handed_over_at is None and not force:
        raise ValidationError({"plate_token_key": ValidationError(
            gettext("The current key material was never handed over to the partner: export it first."),
            code="not_handed_over",
        )})
    retired = _plate_keys_retire(
        partner_id=partner.pk, actor=actor, reason="retired",
        versions=PartnerCredentials.objects.filter(partner=partner, revoked_at__isnull=False,
                                                   plate_key_retired_at__isnull=True),
    )
    if retired:
        _scope_changed(PartnerCredentials, partner.pk)
    return retired


def plate_keys_retire_expired(*, at=None) -> int:
    """Retire every previous plate-token key whose overlap (PLATE_TOKEN_KEY_OVERLAP_S since its
    rotation) has ended without an explicit retirement; one transaction per partner, recorded as
    admin.change `retired_overlap_ended` by the system (beat). Returns the number retired."""
    at = at or timezone.now()
    ended = at - datetime.timedelta(seconds=settings.PLATE_TOKEN_KEY_OVERLAP_S)
    expired = PartnerCredentials.objects.filter(revoked_at__isnull=False, revoked_at__lte=ended,
                                                plate_key_retired_at__isnull=True)
    retired = 0
    for partner_id in sorted(set(expired.values_list("partner_id", flat=True))):
        with transaction.atomic():
            Partner.objects.select_for_update().get(pk=partner_id)
            done = _plate_keys_retire(partner_id=partner_id, versions=expired.filter(partner_id=partner_id),
                                      actor=None, reason="retired_overlap_ended")
            if done:
                _scope_changed(PartnerCredentials, partner_id)
            retired += len(done)
    return retired


@dataclass(frozen=True)
class KeyExport:
    """The current key material of a partner, encrypted to its JWE public key."""

    credentials: PartnerCredentials
    jwe: str = field(repr=False)
    fingerprints: dict[str, str]

    @property
    def filename(self) -> str:
        return f"{self.credentials.partner.slug}-credentials-v{self.credentials.version}.jwe"


@transaction.atomic
def partner_credentials_export(*, partner: Partner, actor=None) -> KeyExport:
    """Hand the partner's current key material over: a compact JWE of the document of
    partners.key_material (client id and secret, plate-token key, both webhook secrets, their
    fingerprints, the previous plate key's fingerprint and overlap end) encrypted to the
    partner's JWE public key - only its private key opens it; never the subject key.

    Checks: current credentials exist and have a partner public key (ValidationError
    `no_credentials` / `no_public_key`). Sets `handed_over_at` (a later rotation then keeps this
    key in an overlap, and its retirement is allowed) and records admin.change `handed_over`.
    May be repeated (each export is recorded)."""
    Partner.objects.select_for_update().get(pk=partner.pk)
    credentials = PartnerCredentials.objects.current().select_related("partner").filter(partner=partner).first()
    if credentials is None:
        raise ValidationError({"partner": ValidationError(gettext("The partner has no current credentials."),
                                                          code="no_credentials")})
    if not credentials.partner_public_key_pem:
        raise ValidationError({"partner_public_key_pem": ValidationError(
            gettext("The partner has no JWE public key to encrypt its key material to."), code="no_public_key",
        )})
    now = timezone.now()
    material = {name: getattr(credentials, name) for name in SECRET_FIELDS}
    fingerprints = secret_fingerprints(material)
    previous = PartnerCredentials.objects.plate_keys_in_overlap(now).filter(partner=partner).first()
    document = {
        "format": FORMAT,
        "partner": credentials.partner.slug,
        "credentials_version": credentials.version,
        "issued_at": credentials.created_at.isoformat(),
        "exported_at": now.isoformat(),
        "client_id": credentials.client_id,
        "secrets": material,
        "fingerprints": fingerprints,
        "plate_token": PLATE_TOKEN,
        "previous_plate_key": None if previous is None else {
            "credentials_version": previous.version,
            "fingerprint": previous.plate_token_key_fingerprint,
            "accepted_until": previous.plate_key_accepted_until().isoformat(),
        },
    }
    compact = material_encrypt(document, public_key_pem=credentials.partner_public_key_pem)
    credentials.handed_over_at = now
    credentials.save(update_fields=["handed_over_at"])
    _audit(actor=actor, object_type="partner_credentials", pk=credentials.pk, reason="handed_over",
           partner_id=partner.pk)
    return KeyExport(credentials=credentials, jwe=compact, fingerprints=fingerprints)


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
