"""The resident's notifications."""

from django.db.models import QuerySet

from access.errors import NotFound
from access.models import Notification, Resident


def notifications_for_resident(*, resident: Resident | None, unread: bool | None = None) -> QuerySet[Notification]:
    if resident is None:
        return Notification.objects.none()
    queryset = Notification.objects.filter(resident=resident)
    if unread is not None:
        queryset = queryset.filter(read_at__isnull=unread)
    return queryset.order_by("-occurred_at", "-id")


def notification_for_resident(*, resident: Resident | None, notification_id: int) -> Notification:
    """One of the resident's notifications, else NotFound."""
    notification = notifications_for_resident(resident=resident).filter(pk=notification_id).first()
    if notification is None:
        raise NotFound(notification_id)
    return notification
