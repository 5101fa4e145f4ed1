"""Partners' devices in our buildings: doors, barriers, cameras."""

from django.db import transaction
from django.utils import timezone

from access.models import Building, Device
from access.services.allowlist import allowlist_push_site
from access.services.auditing import audit_change, clean_save


def _audit(device: Device, actor, reason: str) -> None:
    audit_change(actor=actor, object_type="device", pk=device.pk, reason=reason,
                 company_id=device.building.company_id, building_id=device.building_id)


@transaction.atomic
def device_create(
    *, building: Building, kind: str, name: str, partner, partner_device_ref: str, actor=None
) -> Device:
    """Attach a partner's device to a building. Checks: device ref unique per partner.
    Records admin.change; pushes the site's allowlist to the partner (its entries name the site's
    devices by ref - and a partner's first device there makes the site one it must know)."""
    device = clean_save(
        Device(building=building, kind=kind, name=name, partner=partner, partner_device_ref=partner_device_ref)
    )
    _audit(device, actor, "created")
    allowlist_push_site(building_id=device.building_id, partner_ids={device.partner_id})
    return device


@transaction.atomic
def device_update(*, device: Device, name: str, partner_device_ref: str, actor=None) -> Device:
    """Rename a device or correct the partner's ref of it (building, partner and kind never change:
    remove the device and attach another). Checks as device_create. Records admin.change; a new
    ref pushes the site's allowlist to the partner (its entries name devices by ref)."""
    device = Device.objects.select_for_update().select_related("building").get(pk=device.pk)
    moved = device.partner_device_ref != partner_device_ref
    device.name, device.partner_device_ref = name, partner_device_ref
    clean_save(device)
    _audit(device, actor, "updated")
    if moved:
        allowlist_push_site(building_id=device.building_id, partner_ids={device.partner_id})
    return device


@transaction.atomic
def device_delete(*, device: Device, actor=None) -> None:
    """Detach a device, with the grants for it alone and its guest passes. Records admin.change;
    pushes the site's allowlist to the partner without it."""
    device = Device.objects.select_for_update().select_related("building").get(pk=device.pk)
    partner_id, building_id = device.partner_id, device.building_id
    _audit(device, actor, "deleted")
    device.delete()
    allowlist_push_site(building_id=building_id, partner_ids={partner_id})


@transaction.atomic
def device_set_online(*, device: Device, online: bool, seen_at=None) -> Device:
    """Record a device's online state as it was at `seen_at` (default now), as its partner reported
    it (no audit event: telemetry). Reports may arrive out of order: one older than the state
    stored (`state_changed_at`) changes nothing. Returns the device as stored."""
    seen_at = seen_at or timezone.now()
    stored = Device.objects.select_for_update().get(pk=device.pk)
    if stored.state_changed_at is not None and seen_at < stored.state_changed_at:
        return stored
    stored.online, stored.last_seen_at, stored.state_changed_at = online, seen_at, seen_at
    stored.save(update_fields=["online", "last_seen_at", "state_changed_at"])
    device.online, device.last_seen_at, device.state_changed_at = online, seen_at, seen_at
    return stored
