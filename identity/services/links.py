"""Provider identities linked to residents: created by a manager, the master-data sync or a
first login by a verified claim (identity.services.signin); removed by a manager."""

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext

from access.models import Resident
from audit.actions import Action, ActorKind, Outcome
from audit.services import record
from core.security.identifiers import pseudonymous_ref, user_ref
from identity.models import ProviderLink


def _actor(actor) -> dict:
    if actor is None:
        return {"actor_kind": ActorKind.SYSTEM, "actor_ref": ""}
    return {"actor_kind": ActorKind.STAFF if actor.is_staff else ActorKind.RESIDENT, "actor_ref": user_ref(actor)}


def _audit(action, link: ProviderLink, actor, reason: str) -> None:
    record(
        action=action,
        outcome=Outcome.SUCCESS,
        object_type="resident",
        object_ref=pseudonymous_ref("resident", link.resident_id),
        company_id=link.resident.company_id,
        reason=reason,
        **_actor(actor),
    )


@transaction.atomic
def provider_link_create(
    *, resident: Resident, subject: str, issuer: str | None = None,
    origin: str = ProviderLink.Origin.ADMIN, actor=None,
) -> ProviderLink:
    """Link the provider identity (`issuer`, default the configured one; `subject`, the provider's
    stable `sub`) to `resident`. Checks: an issuer is known, the subject is not linked yet.
    Records identity.link_create (reason: the origin)."""
    issuer = (issuer or settings.IDENTITY_OIDC_ISSUER).rstrip("/")
    if not issuer:
        raise ValidationError({"issuer": gettext("No identity provider is configured (IDENTITY_OIDC_ISSUER).")})
    subject = (subject or "").strip()
    if ProviderLink.objects.filter(issuer=issuer, subject=subject).exists():
        raise ValidationError({"subject": gettext("This provider identity is already linked to a resident.")})
    link = ProviderLink(issuer=issuer, subject=subject, resident=resident, origin=origin)
    link.full_clean()
    link.save()
    _audit(Action.IDENTITY_LINK_CREATE, link, actor, str(origin))
    return link


@transaction.atomic
def provider_link_delete(*, link: ProviderLink, actor=None) -> None:
    """Unlink: the provider identity no longer signs in as the resident (tokens already issued
    stay until revoked, see identity.services.revocation). Records identity.link_delete."""
    _audit(Action.IDENTITY_LINK_DELETE, link, actor, "unlinked")
    link.delete()
