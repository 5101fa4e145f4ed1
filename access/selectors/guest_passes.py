"""The resident's guest passes."""

from django.db.models import QuerySet
from django.utils import timezone

from access.errors import NotFound
from access.models import GuestPass, Resident


def guest_passes_for_resident(*, resident: Resident | None) -> QuerySet[GuestPass]:
    if resident is None:
        return GuestPass.objects.none()
    return GuestPass.objects.select_related("device").filter(resident=resident).order_by("-created_at", "-id")


def guest_pass_for_resident(*, resident: Resident | None, pass_id: int) -> GuestPass:
    """One of the resident's passes, else NotFound."""
    guest_pass = guest_passes_for_resident(resident=resident).filter(pk=pass_id).first()
    if guest_pass is None:
        raise NotFound(pass_id)
    return guest_pass


def guest_passes_active_count(*, resident: Resident, at=None) -> int:
    """Passes of the resident not yet ended (neither revoked, used nor expired)."""
    at = at or timezone.now()
    return GuestPass.objects.filter(
        resident=resident, revoked_at__isnull=True, used_at__isnull=True, valid_until__gt=at
    ).count()
