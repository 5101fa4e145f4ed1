"""The access app's sections of the resident's data export (see consent.data_export).

Registered at app ready (AccessConfig.ready). Everything access holds about one resident:
profile, residencies, grants, cars, guest passes, notifications, remote opens and the history
of their own actions and of partners' decisions about them. Plates and names are the
resident's own data and appear decrypted; plate tokens, idempotency keys, partner request ids
and anything encrypted at rest in its stored form never do.
"""

from __future__ import annotations

from django.db.models import Q

from access.models import AccessGrant, GuestPass, Notification, OpenRequest, Residency, Resident, Vehicle
from access.selectors.history import history_for_resident
from consent.data_export import data_export_section_register
from core.security.identifiers import user_ref


def _resident(resident_id: int) -> Resident:
    return Resident.objects.select_related("company", "user").get(pk=resident_id)


def profile(*, resident_id: int) -> dict:
    resident = _resident(resident_id)
    return {
        "ref": user_ref(resident.user), "username": resident.user.get_username(), "full_name": resident.full_name,
        "phone": resident.phone, "email": resident.email,
        "company": {"id": resident.company_id, "name": resident.company.name},
        "suspended": resident.suspended, "created_at": resident.created_at,
    }


def residencies(*, resident_id: int) -> list[dict]:
    return [
        {"id": residency.pk, "building": {"id": residency.unit.building_id, "name": residency.unit.building.name,
                                          "address": residency.unit.building.address},
         "unit": residency.unit.number, "kind": residency.kind, "valid_from": residency.valid_from,
         "valid_until": residency.valid_until}
        for residency in Residency.objects.filter(resident_id=resident_id).select_related("unit__building")
        .order_by("valid_from", "id")
    ]


def grants(*, resident_id: int) -> list[dict]:
    rows = (AccessGrant.objects.filter(Q(resident_id=resident_id) | Q(residency__resident_id=resident_id))
            .select_related("building", "device").order_by("created_at", "id"))
    return [
        {"id": grant.pk, "residency": grant.residency_id,
         "building": {"id": grant.building_id, "name": grant.building.name} if grant.building_id else None,
         "device": {"id": grant.device_id, "name": grant.device.name} if grant.device_id else None,
         "valid_from": grant.valid_from, "valid_until": grant.valid_until, "suspended": grant.suspended,
         "schedule": grant.schedule, "created_at": grant.created_at}
        for grant in rows
    ]


def vehicles(*, resident_id: int) -> list[dict]:
    return [
        {"id": vehicle.pk, "plate": vehicle.plate, "label": vehicle.label, "created_at": vehicle.created_at}
        for vehicle in Vehicle.objects.filter(resident_id=resident_id).order_by("id")
    ]


def guest_passes(*, resident_id: int) -> list[dict]:
    return [
        {"id": guest_pass.pk, "device": {"id": guest_pass.device_id, "name": guest_pass.device.name},
         "plate": guest_pass.plate, "label": guest_pass.label, "valid_from": guest_pass.valid_from,
         "valid_until": guest_pass.valid_until, "one_time": guest_pass.one_time, "used_at": guest_pass.used_at,
         "revoked_at": guest_pass.revoked_at, "status": guest_pass.state(), "created_at": guest_pass.created_at}
        for guest_pass in GuestPass.objects.filter(resident_id=resident_id).select_related("device").order_by("id")
    ]


def notifications(*, resident_id: int) -> list[dict]:
    return [
        {"id": notification.pk, "kind": notification.kind, "device": notification.device_id,
         "occurred_at": notification.occurred_at, "read_at": notification.read_at, "data": notification.data}
        for notification in Notification.objects.filter(resident_id=resident_id).order_by("occurred_at", "id")
    ]


def remote_opens(*, resident_id: int) -> list[dict]:
    user_id = Resident.objects.filter(pk=resident_id).values_list("user_id", flat=True).get()
    return [
        {"id": request.pk, "device": {"id": request.device_id, "name": request.device.name},
         "result": request.result, "created_at": request.created_at, "completed_at": request.completed_at}
        for request in OpenRequest.objects.filter(user_id=user_id).select_related("device").order_by("id")
    ]


def history(*, resident_id: int) -> list[dict]:
    resident = _resident(resident_id)
    own_ref = user_ref(resident.user)
    return [
        {"id": event.pk, "occurred_at": event.occurred_at, "action": event.action, "outcome": event.outcome,
         "reason": event.reason, "object_type": event.object_type, "device_ref": event.device_ref,
         # the address a request came from is theirs only when they made it (a decision's is the partner's)
         "source_ip": event.source_ip if event.actor_ref == own_ref else ""}
        for event in history_for_resident(user=resident.user, resident=resident).reverse().iterator()
    ]


SECTIONS = (
    ("resident", "Your profile: name, phone, e-mail, management company, account", profile),
    ("residencies", "Your flats and the dates you live there", residencies),
    ("grants", "Your access grants (buildings, devices, schedules)", grants),
    ("vehicles", "Your cars (plates as you registered them, normalised)", vehicles),
    ("guest_passes", "The guest passes you created and their status", guest_passes),
    ("notifications", "What partners reported that concerns you", notifications),
    ("remote_opens", "The doors and barriers you opened from the app", remote_opens),
    ("history", "Your access history: your own actions and partners' decisions about you", history),
)


def register_access_sections() -> None:
    for name, description, provider in SECTIONS:
        data_export_section_register(name=name, description=description, provider=provider)
