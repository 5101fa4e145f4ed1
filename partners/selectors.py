"""Reads of the partners app, already scoped to the caller."""

from django.db.models import QuerySet
from django.utils import timezone

from core.security.tenancy import company_ids_for_user
from partners.models import Partner, PartnerContract, PartnerCredentials


def current_credentials(*, partner: Partner | int) -> PartnerCredentials | None:
    """The partner's (object or id) current, not revoked credentials, or None."""
    return PartnerCredentials.objects.current().filter(partner=partner).first()


def contracts_for_user(*, user) -> QuerySet[PartnerContract]:
    """Contracts of the management companies `user` works for (all of them for a superuser)."""
    ids = company_ids_for_user(user)
    queryset = PartnerContract.objects.select_related("partner")
    return queryset if ids is None else queryset.filter(company_id__in=ids)


def active_contracts(*, partner: Partner | int, at=None) -> QuerySet[PartnerContract]:
    partner_id = partner if isinstance(partner, int) else partner.pk
    return PartnerContract.objects.active(at or timezone.now()).filter(partner_id=partner_id)


def contract_covering(*, partner_id: int, building_id: int, operation: str, at=None) -> PartnerContract | None:
    """An active contract of the partner that covers the building and allows `operation`.

    operation: "open" | "video" | "face" | "plate".
    """
    return (
        PartnerContract.objects.active(at)
        .filter(partner_id=partner_id, buildings__id=building_id, **{f"allows_{operation}": True})
        .first()
    )


def partners_covering_building_ids(*, building_ids, operation: str | None = None, at=None) -> dict[int, set[int]]:
    """{partner_id: {building ids it covers among `building_ids`}} under active contracts
    (optionally only contracts allowing `operation`), for usable partners only."""
    queryset = PartnerContract.objects.active(at).filter(
        buildings__id__in=list(building_ids), partner__active=True, partner__suspended_at__isnull=True
    )
    if operation:
        queryset = queryset.filter(**{f"allows_{operation}": True})
    result: dict[int, set[int]] = {}
    for partner_id, building_id in queryset.values_list("partner_id", "buildings__id"):
        result.setdefault(partner_id, set()).add(building_id)
    return result
