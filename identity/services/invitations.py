"""Invitations and password resets: one-time links that let a resident set a password.

A link carries a random 256-bit token; only its SHA-256 is stored (`Invitation.token_digest`).
It works once, until it expires (IDENTITY_INVITATION_TTL_H, IDENTITY_RESET_TTL_MIN), and a newer
link of the same purpose supersedes it. The token is made where the message is built
(`invitation_deliver`, a task after the creating transaction commits), so it never passes
through the broker or the database in clear. Every step is an audit event; nothing a visitor
sees says whether an account exists.
"""

import datetime
import hashlib
import secrets

from django.conf import settings
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import transaction
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from access.models import Resident
from audit.actions import Action, ActorKind, Outcome
from audit.services import record
from core.security.identifiers import pseudonymous_ref, user_ref
from identity import channels, oidc, signin_audit
from identity.contacts import PHONE, guess_kind, resident_ids_with
from identity.models import Invitation
from identity.services.revocation import user_access_revoke

Purpose = Invitation.Purpose
Channel = Invitation.Channel


class InvitationInvalid(Exception):
    """The link is unknown, used, superseded or expired; `cause` is an audit code."""

    def __init__(self, cause: str):
        super().__init__(cause)
        self.cause = cause


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _actor(actor) -> dict:
    if actor is None:
        return {"actor_kind": ActorKind.SYSTEM, "actor_ref": ""}
    return {"actor_kind": ActorKind.STAFF if actor.is_staff else ActorKind.RESIDENT, "actor_ref": user_ref(actor)}


def _audit(action, invitation: Invitation, *, outcome=Outcome.SUCCESS, reason: str = "", actor=None, **fields):
    record(
        action=action,
        outcome=outcome,
        object_type="resident",
        object_ref=pseudonymous_ref("resident", invitation.resident_id),
        company_id=invitation.resident.company_id,
        reason=reason or f"{invitation.purpose}.{invitation.channel}",
        **{**_actor(actor), **fields},
    )


def _ttl(purpose: str) -> datetime.timedelta:
    if purpose == Purpose.RESET:
        return datetime.timedelta(minutes=settings.IDENTITY_RESET_TTL_MIN)
    return datetime.timedelta(hours=settings.IDENTITY_INVITATION_TTL_H)


def _check_channel(resident: Resident, channel: str) -> None:
    if channel == Channel.EMAIL and not resident.email:
        raise ValidationError({"channel": _("The resident has no e-mail address.")}, code="no_email")
    if channel == Channel.SMS and not resident.phone:
        raise ValidationError({"channel": _("The resident has no phone number.")}, code="no_phone")
    if channel not in Channel.values:
        raise ValidationError({"channel": "Unknown channel."}, code="channel")


@transaction.atomic
def invitation_create(*, resident: Resident, channel: str, actor=None, purpose: str = Purpose.INVITE) -> Invitation:
    """Create a one-time link for `resident` and queue its delivery by `channel` ("email" or
    "sms") once this transaction commits (identity.tasks.invitation_deliver).

    Checks: no identity provider is configured (residents then sign in there and are linked
    instead), the resident has the channel's contact, the resident's account is active.
    Supersedes the resident's unused links of the same purpose. Records
    identity.invitation_create (or identity.password_reset for a reset).
    """
    if oidc.configured():
        raise ValidationError(
            _("Residents sign in with the identity provider; link their provider identity instead."),
            code="provider_configured",
        )
    _check_channel(resident, channel)
    if not resident.user.is_active:
        raise ValidationError(_("The resident's account is disabled."), code="inactive")
    now = timezone.now()
    Invitation.objects.filter(resident=resident, purpose=purpose, used_at=None, revoked_at=None).update(revoked_at=now)
    invitation = Invitation(
        resident=resident, purpose=purpose, channel=channel, created_by=actor,
        created_at=now, expires_at=now + _ttl(purpose),
    )
    invitation.full_clean()
    invitation.save()
    action = Action.IDENTITY_PASSWORD_RESET if purpose == Purpose.RESET else Action.IDENTITY_INVITATION_CREATE
    _audit(action, invitation, actor=actor)

    from identity.tasks import invitation_deliver  # tasks import this module

    transaction.on_commit(lambda: invitation_deliver.delay(invitation.pk))
    return invitation


def invitation_create_bulk(*, residents, channel: str, actor=None) -> tuple[list[Invitation], list[tuple]]:
    """Invite each of `residents` (one transaction each, so one refusal does not undo the
    others). Returns (invitations, [(resident, ValidationError), ...])."""
    created, refused = [], []
    for resident in residents:
        try:
            created.append(invitation_create(resident=resident, channel=channel, actor=actor))
        except ValidationError as exc:
            refused.append((resident, exc))
    return created, refused


def _link(token: str) -> str:
    return settings.IDENTITY_PUBLIC_URL + reverse("identity:invitation", args=[token])


def _message(invitation: Invitation, link: str) -> tuple[str, str, str]:
    """(subject, e-mail body, SMS text) in Russian, the e-mail also in English."""
    expires = timezone.localtime(invitation.expires_at).strftime("%d.%m.%Y %H:%M UTC")
    texts = {}
    for language in ("ru", "en"):
        with translation.override(language):
            if invitation.purpose == Purpose.RESET:
                subject = _("smarthome: password reset")
                body = _("Someone asked to reset your smarthome password. If it was you, set a new one here:")
            else:
                subject = _("smarthome: your invitation")
                body = _("Your management company invites you to the smarthome app. Set your password here:")
            note = _("The link works once, until %(expires)s. If you did not expect it, ignore this message.") % {
                "expires": expires
            }
            texts[language] = (subject, f"{body}\n{link}\n\n{note}\n")
    subject = f"{texts['ru'][0]} · {texts['en'][0]}"
    email_body = f"{texts['ru'][1]}\n---\n\n{texts['en'][1]}"
    sms = f"{texts['ru'][1].splitlines()[0]} {link}"
    return subject, email_body, sms


def invitation_deliver(*, invitation_id: int) -> bool:
    """Make the link's token, store its digest and send the message (the body of the task).

    Does nothing for a link that is used, superseded, expired or already sent (a redelivered
    task). A refused delivery leaves no token and raises DeliveryFailed (the task retries).
    Records identity.invitation_send, success or failure.
    """
    try:
        with transaction.atomic():
            invitation = (
                Invitation.objects.select_for_update().select_related("resident").filter(pk=invitation_id).first()
            )
            if invitation is None or invitation.sent_at or invitation.used_at or invitation.revoked_at:
                return False
            if timezone.now() >= invitation.expires_at:
                return False
            token = secrets.token_urlsafe(32)
            invitation.token_digest = token_digest(token)
            invitation.sent_at = timezone.now()
            invitation.save(update_fields=["token_digest", "sent_at"])
            subject, body, sms = _message(invitation, _link(token))
            resident = invitation.resident
            if invitation.channel == Channel.SMS:
                channels.send_sms(to=resident.phone, text=sms)
            else:
                channels.send_email(to=resident.email, subject=subject, body=body)
            _audit(Action.IDENTITY_INVITATION_SEND, invitation)
            return True
    except channels.DeliveryFailed as exc:
        invitation = Invitation.objects.select_related("resident").get(pk=invitation_id)
        _audit(
            Action.IDENTITY_INVITATION_SEND, invitation, outcome=Outcome.FAILURE,
            reason=signin_audit.code(f"{invitation.channel}.{exc}"),
        )
        raise


def invitation_for_token(token: str) -> Invitation:
    """The usable link `token` opens, or raise InvitationInvalid ("unknown", "used",
    "superseded", "expired")."""
    invitation = Invitation.objects.select_related("resident__user").filter(token_digest=token_digest(token)).first()
    if invitation is None:
        raise InvitationInvalid("unknown")
    if invitation.used_at:
        raise InvitationInvalid("used")
    if invitation.revoked_at:
        raise InvitationInvalid("superseded")
    if timezone.now() >= invitation.expires_at:
        raise InvitationInvalid("expired")
    return invitation


def invitation_refused(*, cause: str, request) -> None:
    """Audit an unusable link (aggregated when they flood: token guessing)."""
    signin_audit.record_failure(
        action=Action.IDENTITY_INVITATION_REDEEM, outcome=Outcome.DENIED, reason=signin_audit.code(cause),
        object_type="invitation", request=request,
    )


@transaction.atomic
def invitation_redeem(*, token: str, password: str, request=None):
    """Set the resident's password through the link `token`; the link is then used up, with every
    other open link of the resident. Checks: the link is usable (else InvitationInvalid), the
    password passes AUTH_PASSWORD_VALIDATORS (else ValidationError). After a reset, the
    resident's tokens and sessions are revoked. Records identity.invitation_redeem. Returns
    the resident's user.
    """
    invitation = invitation_for_token(token)
    invitation = Invitation.objects.select_for_update().select_related("resident__user").get(pk=invitation.pk)
    if not invitation.is_usable():
        raise InvitationInvalid("used")
    user = invitation.resident.user
    validate_password(password, user)
    user.set_password(password)
    user.save(update_fields=["password"])
    now = timezone.now()
    invitation.used_at = now
    invitation.save(update_fields=["used_at"])
    Invitation.objects.filter(resident=invitation.resident, used_at=None, revoked_at=None).update(revoked_at=now)
    _audit(Action.IDENTITY_INVITATION_REDEEM, invitation, source_ip=signin_audit.client_address(request))
    if invitation.purpose == Purpose.RESET:
        user_access_revoke(user=user, reason="password_reset", request=request)
    return user


def password_reset_request(*, identifier: str, request=None) -> None:
    """Send a reset link to the resident whose phone or e-mail is `identifier` (by SMS to a
    phone, by e-mail to an e-mail address), if exactly one resident has it and may sign in with
    a password. Always returns None: the caller's answer is the same either way. An unknown
    identifier is recorded as identity.password_reset denied (aggregated in floods)."""
    kind = guess_kind(identifier)
    resident_ids = resident_ids_with(kind, identifier) if kind else []
    if len(resident_ids) == 1:
        resident = Resident.objects.select_related("user").get(pk=resident_ids[0])
        channel = Channel.SMS if kind == PHONE else Channel.EMAIL
        try:
            invitation_create(resident=resident, channel=channel, purpose=Purpose.RESET)
            return
        except ValidationError:
            pass
    signin_audit.record_failure(
        action=Action.IDENTITY_PASSWORD_RESET, outcome=Outcome.DENIED,
        reason="ambiguous" if len(resident_ids) > 1 else "unknown",
        object_type="login", object_ref=signin_audit.login_ref(identifier), request=request,
    )
