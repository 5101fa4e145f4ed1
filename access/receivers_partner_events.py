"""What the access app does with a partner's verified events (partners.signals.partner_event_received).

- device.online / device.offline: the device's online flag and last_seen_at;
- door.opened / barrier.opened / access.denied / face.not_recognised with a `subject_id`: a
  notification for the resident the partner knows by it.
An event naming a device that is not the partner's (another partner's, or unknown) - or a
device event naming none - is refused (partners.webhooks.EventRefused: 422 `unknown-device`,
nothing kept). Online/offline reports apply in the order they happened, not the order they
arrive (access.services.devices.device_set_online).
Enrolment and deletion events are the consent app's (consent.receivers.on_partner_event).
"""

from django.dispatch import receiver

from access.models import Device
from access.services.devices import device_set_online
from access.services.notifications import notification_create
from consent.selectors import resident_id_for_subject
from partners.signals import partner_event_received
from partners.webhooks import EventRefused

NOTIFIED_EVENTS = {
    "door.opened": "door_opened",
    "barrier.opened": "barrier_opened",
    "access.denied": "access_denied",
    "face.not_recognised": "face_not_recognised",
}


def _device(partner_id: int, data: dict, *, required: bool) -> Device | None:
    """The partner's device the event names; None if it names none (and need not);
    EventRefused if it names one that is not the partner's."""
    ref = data.get("device_ref")
    if not isinstance(ref, str):
        if required:
            raise EventRefused("unknown-device", "A device event must name one of your devices (device_ref).")
        return None
    device = Device.objects.filter(partner_id=partner_id, partner_device_ref=ref).first()
    if device is None:
        raise EventRefused("unknown-device", "The event names a device that is not one of yours.")
    return device


@receiver(partner_event_received, dispatch_uid="access.device_state")
def device_state(sender, *, partner_id: int, event_type: str, data: dict, occurred_at, **kwargs):
    if event_type not in ("device.online", "device.offline"):
        return
    device = _device(partner_id, data, required=True)
    device_set_online(device=device, online=event_type == "device.online", seen_at=occurred_at)


@receiver(partner_event_received, dispatch_uid="access.device_notification")
def device_notification(sender, *, partner_id: int, event_type: str, data: dict, occurred_at, **kwargs):
    kind = NOTIFIED_EVENTS.get(event_type)
    if kind is None:
        return
    device = _device(partner_id, data, required=False)
    if device is None or not isinstance(data.get("subject_id"), str):
        return
    resident_id = resident_id_for_subject(partner_id=partner_id, subject_id=data["subject_id"])
    if resident_id is None:
        return
    reason = data.get("reason")
    extra = {"reason": reason} if isinstance(reason, str) and len(reason) <= 64 else {}
    notification_create(resident_id=resident_id, kind=kind, device_id=device.pk, occurred_at=occurred_at, data=extra)
