"""A provider login resolved to the resident it signs in as - never a new resident."""

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.utils import timezone

from access.models import Resident
from identity.contacts import EMAIL, PHONE, resident_ids_with
from identity.models import ProviderLink, ProviderSession
from identity.services.links import provider_link_create

# claim -> (contact index kind, the claim that must be true for it to count)
LINK_CLAIMS = {"phone_number": (PHONE, "phone_number_verified"), "email": (EMAIL, "email_verified")}


class SignInRefused(Exception):
    """The provider vouched for someone who may not sign in here; `cause` is an audit code."""

    def __init__(self, cause: str):
        super().__init__(cause)
        self.cause = cause


def _link_by_claim(issuer: str, claims: dict) -> ProviderLink:
    claim = settings.IDENTITY_OIDC_LINK_CLAIM
    if not claim:
        raise SignInRefused("unlinked")
    if claim not in LINK_CLAIMS:
        raise ImproperlyConfigured(f"IDENTITY_OIDC_LINK_CLAIM must be one of {', '.join(LINK_CLAIMS)}")
    kind, verified_claim = LINK_CLAIMS[claim]
    value = claims.get(claim)
    if not isinstance(value, str) or not value:
        raise SignInRefused("unlinked")
    if claims.get(verified_claim) is not True:
        raise SignInRefused("claim_unverified")
    resident_ids = resident_ids_with(kind, value)
    if not resident_ids:
        raise SignInRefused("unlinked")
    if len(resident_ids) > 1:
        raise SignInRefused("ambiguous")
    resident = Resident.objects.select_related("user").get(pk=resident_ids[0])
    if ProviderLink.objects.filter(issuer=issuer, resident=resident).exists():
        raise SignInRefused("linked_to_another_subject")
    return provider_link_create(
        resident=resident, subject=claims["sub"], issuer=issuer, origin=ProviderLink.Origin.CLAIM
    )


@transaction.atomic
def provider_login_resolve(*, claims: dict) -> ProviderLink:
    """The link the validated ID token `claims` sign in with.

    By (issuer, `sub`); for an unknown subject, when IDENTITY_OIDC_LINK_CLAIM is set, by that
    claim (which the provider must mark verified) matching exactly one resident not linked yet -
    then the link is created (identity.link_create, origin "claim"). Raises SignInRefused
    ("unlinked", "ambiguous", "claim_unverified", "linked_to_another_subject", "inactive").
    Remembers the provider session id (`sid`) for back-channel logout.
    """
    issuer = settings.IDENTITY_OIDC_ISSUER
    link = (
        ProviderLink.objects.select_related("resident__user")
        .filter(issuer=issuer, subject=claims["sub"]).first()
    )
    if link is None:
        link = _link_by_claim(issuer, claims)
    if not link.resident.user.is_active:
        raise SignInRefused("inactive")
    link.last_login_at = timezone.now()
    link.save(update_fields=["last_login_at"])
    sid = claims.get("sid")
    if isinstance(sid, str) and sid:
        ProviderSession.objects.get_or_create(link=link, sid=sid[:255])
    return link


def links_for_logout(*, sub: str | None, sid: str | None):
    """The links a back-channel logout token names (by `sub`, or by a remembered `sid`)."""
    issuer = settings.IDENTITY_OIDC_ISSUER
    links = ProviderLink.objects.select_related("resident__user").filter(issuer=issuer)
    if sub:
        return list(links.filter(subject=sub))
    return list(links.filter(sessions__sid=sid).distinct())
