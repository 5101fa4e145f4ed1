"""Admin pages of records nobody edits in the admin (audit events, outbox messages, alerts)."""

from core.portal.isolation import ObjectNotFoundMixin


class ReadOnlyAdminMixin(ObjectNotFoundMixin):
    """No add, change or delete in the admin; actions and views that only read stay available.
    An id outside the admin's queryset is a 404 (ObjectNotFoundMixin).

    Mix in before `admin.ModelAdmin`. Who may view is still the subclass's (or the permission
    table's) business."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
