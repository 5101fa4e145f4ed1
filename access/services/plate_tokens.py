"""Plate tokens: each car's plate under the key of every partner that may see it.

A vehicle has one token per partner with an active plate contract over one of its resident's
buildings and current credentials (HMAC-SHA256 of the normalised plate, access.plates). Tokens
follow the resident (a move-in or move-out), the car (a new plate) and the partner (its
contracts or plate key changed: `partner_scope_refresh`, after the change has committed).
"""

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils.translation import gettext

from access.models import Building, Resident, Vehicle, VehiclePlateToken
from access.plates import plate_token
from access.selectors.residents import resident_building_ids
from access.services.allowlist import allowlist_push_partner_sites
from partners.models import PartnerCredentials
from partners.selectors import partners_covering_building_ids


def vehicle_tokens_refresh(vehicle: Vehicle) -> None:
    """Make the vehicle's tokens exactly one per partner that may see it now (caller's
    transaction). A plate another car already has at a partner: ValidationError `plate_taken`."""
    building_ids = resident_building_ids(resident=vehicle.resident)
    partner_ids = set(partners_covering_building_ids(building_ids=building_ids, operation="plate"))
    keys = _plate_keys(partner_ids)
    wanted = {pid: plate_token(key=keys[pid], plate=vehicle.plate) for pid in partner_ids if pid in keys}
    VehiclePlateToken.objects.filter(vehicle=vehicle).exclude(partner_id__in=list(wanted)).delete()
    for partner_id, token in wanted.items():
        try:
            with transaction.atomic():
                VehiclePlateToken.objects.update_or_create(
                    vehicle=vehicle, partner_id=partner_id, defaults={"token": token}
                )
        except IntegrityError:
            raise ValidationError(
                {"plate": ValidationError(gettext("This plate is already registered to another vehicle."),
                                          code="plate_taken")}
            ) from None


def resident_tokens_refresh(resident: Resident) -> None:
    """Refresh the tokens of every car of the resident (after a move-in or move-out)."""
    for vehicle in resident.vehicles.all():
        vehicle_tokens_refresh(vehicle)


def _plate_keys(partner_ids) -> dict[int, bytes]:
    return {
        credentials.partner_id: credentials.plate_token_key_bytes()
        for credentials in PartnerCredentials.objects.current().filter(partner_id__in=list(partner_ids))
    }


@transaction.atomic
def plate_tokens_rebuild(*, partner_id: int) -> int:
    """Recompute every vehicle's token for one partner (after its contracts or plate key
    changed). A vehicle whose plate now collides for this partner loses that token rather than
    failing the whole rebuild. Returns how many tokens the partner has afterwards."""
    keys = _plate_keys([partner_id])
    VehiclePlateToken.objects.filter(partner_id=partner_id).delete()
    if partner_id not in keys:
        return 0
    key = keys[partner_id]
    covered = partners_covering_building_ids(
        building_ids=Building.objects.values_list("id", flat=True), operation="plate"
    ).get(partner_id, set())
    if not covered:
        return 0
    created = 0
    vehicles = Vehicle.objects.select_related("resident").filter(resident__company__buildings__id__in=covered)
    for vehicle in vehicles.distinct().iterator():
        if not resident_building_ids(resident=vehicle.resident) & covered:
            continue
        token = plate_token(key=key, plate=vehicle.plate)
        with transaction.atomic():
            _, was_created = VehiclePlateToken.objects.get_or_create(
                partner_id=partner_id, token=token, defaults={"vehicle": vehicle}
            )
        created += was_created
    return created


@transaction.atomic
def partner_scope_refresh(*, partner_id: int) -> int:
    """A partner's contracts or credentials changed (and committed): rebuild its plate tokens,
    then push the full allowlist of each of its sites - in that order, since the lists carry the
    new tokens. One transaction. Returns the number of sites pushed."""
    plate_tokens_rebuild(partner_id=partner_id)
    return allowlist_push_partner_sites(partner_id=partner_id)
