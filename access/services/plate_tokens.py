"""Plate tokens: each car's plate under the keys of every partner that may see it.

A vehicle has one token per partner with an active plate contract over one of its resident's
buildings and per plate-token key that partner's decisions accept (HMAC-SHA256 of the
normalised plate, access.plates): the current key, and during a rotation's overlap the
previous one too (partners.selectors.plate_keys_in_use; `VehiclePlateToken.key_version`), so a
camera under either key finds the car in the one lookup a decision makes. Guest passes carry
their plate's token under the current and the previous key the same way.

Tokens follow the resident (a move-in or move-out), the car (a new plate) and the partner (its
contracts or keys changed: `partner_scope_refresh`, after the change has committed). A retired
key's tokens go in the retiring transaction (`plate_tokens_retire`).
"""

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext

from access.models import Building, GuestPass, Resident, Vehicle, VehiclePlateToken
from access.plates import plate_token
from access.selectors.residents import resident_building_ids
from access.services.allowlist import allowlist_push_partner_sites
from partners.selectors import partners_covering_building_ids, plate_keys_in_use


def plate_tokens_under(*, plate: str, keys: dict[int, list[tuple[int, bytes]]]) -> dict[tuple[int, int], str]:
    """{(partner id, key version): token} of a normalised plate under every key of `keys`
    (partners.selectors.plate_keys_in_use): the tokens a vehicle with this plate should have."""
    return {(partner_id, version): plate_token(key=key, plate=plate)
            for partner_id, versions in keys.items() for version, key in versions}


def vehicle_tokens_refresh(vehicle: Vehicle) -> None:
    """Make the vehicle's tokens exactly one per partner that may see it now and key that partner's
    decisions accept (caller's transaction). A plate another car already has at a partner:
    ValidationError `plate_taken`."""
    building_ids = resident_building_ids(resident=vehicle.resident)
    partner_ids = set(partners_covering_building_ids(building_ids=building_ids, operation="plate"))
    wanted = plate_tokens_under(plate=vehicle.plate, keys=plate_keys_in_use(partner_ids=partner_ids))
    stale = [pk for pk, partner_id, version in VehiclePlateToken.objects.filter(vehicle=vehicle)
             .values_list("pk", "partner_id", "key_version") if (partner_id, version) not in wanted]
    VehiclePlateToken.objects.filter(pk__in=stale).delete()
    for (partner_id, version), token in wanted.items():
        try:
            with transaction.atomic():
                VehiclePlateToken.objects.update_or_create(
                    vehicle=vehicle, partner_id=partner_id, key_version=version, defaults={"token": token}
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


@transaction.atomic
def plate_tokens_rebuild(*, partner_id: int) -> int:
    """Make one partner's tokens exactly those of every covered vehicle under every key its
    decisions accept (after its contracts or keys changed): tokens that stay are not touched,
    the others are deleted or added. A vehicle whose plate now collides for this partner lacks
    that token rather than failing the whole rebuild. Returns how many tokens the partner has."""
    keys = plate_keys_in_use(partner_ids=[partner_id]).get(partner_id, [])
    covered = partners_covering_building_ids(
        building_ids=Building.objects.values_list("id", flat=True), operation="plate"
    ).get(partner_id, set())
    wanted: dict[tuple[int, int], str] = {}
    if keys and covered:
        vehicles = Vehicle.objects.select_related("resident").filter(resident__company__buildings__id__in=covered)
        for vehicle in vehicles.distinct().iterator():
            if resident_building_ids(resident=vehicle.resident) & covered:
                for version, key in keys:
                    wanted[(vehicle.pk, version)] = plate_token(key=key, plate=vehicle.plate)
    existing = VehiclePlateToken.objects.filter(partner_id=partner_id)
    kept = set()
    stale = []
    for pk, vehicle_id, version, token in existing.values_list("pk", "vehicle_id", "key_version", "token"):
        if wanted.get((vehicle_id, version)) == token:
            kept.add((vehicle_id, version))
        else:
            stale.append(pk)
    VehiclePlateToken.objects.filter(pk__in=stale).delete()
    for (vehicle_id, version), token in wanted.items():
        if (vehicle_id, version) in kept:
            continue
        with transaction.atomic():
            VehiclePlateToken.objects.get_or_create(
                partner_id=partner_id, token=token, defaults={"vehicle_id": vehicle_id, "key_version": version}
            )
    return existing.count()


def guest_pass_tokens(*, partner_id: int, plate: str) -> tuple[str, str | None]:
    """(token under the partner's current key, token under its previous key in an overlap or None)
    of a normalised plate; ("", None) when the partner has no credentials."""
    return _current_and_previous(plate_keys_in_use(partner_ids=[partner_id]).get(partner_id, []), plate)


def _current_and_previous(keys: list[tuple[int, bytes]], plate: str) -> tuple[str, str | None]:
    tokens = [plate_token(key=key, plate=plate) for _, key in keys[:2]] + ["", None]
    return tokens[0], tokens[1] if len(keys) > 1 else None


def guest_pass_tokens_rebuild(*, partner_id: int) -> int:
    """Recompute the tokens of the partner's guest passes that may still let a car in (caller's
    transaction); rows whose tokens stay are not touched. Returns how many changed."""
    keys = plate_keys_in_use(partner_ids=[partner_id]).get(partner_id)
    if not keys:
        return 0
    changed = 0
    passes = GuestPass.objects.filter(device__partner_id=partner_id, revoked_at__isnull=True, used_at__isnull=True,
                                      valid_until__gt=timezone.now())
    for guest_pass in passes:
        tokens = _current_and_previous(keys, guest_pass.plate)
        if (guest_pass.plate_token, guest_pass.previous_plate_token) != tokens:
            GuestPass.objects.filter(pk=guest_pass.pk).update(plate_token=tokens[0], previous_plate_token=tokens[1])
            changed += 1
    return changed


def plate_tokens_retire(*, partner_id: int, versions) -> None:
    """Plate-token keys of the partner were retired (caller's transaction): their vehicles'
    tokens go, and guest passes keep only tokens under the keys still accepted."""
    VehiclePlateToken.objects.filter(partner_id=partner_id, key_version__in=list(versions)).delete()
    guest_pass_tokens_rebuild(partner_id=partner_id)


@transaction.atomic
def partner_scope_refresh(*, partner_id: int) -> int:
    """A partner's contracts or credentials changed (and committed): rebuild its plate tokens and
    its guest passes' tokens, then push the full allowlist of each of its sites - in that order,
    since the lists carry the new tokens. One transaction. Returns the number of sites pushed."""
    plate_tokens_rebuild(partner_id=partner_id)
    guest_pass_tokens_rebuild(partner_id=partner_id)
    return allowlist_push_partner_sites(partner_id=partner_id)
