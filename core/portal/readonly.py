"""Admin pages of records nobody edits in the admin (audit events, outbox messages, alerts)."""


class ReadOnlyAdminMixin:
    """No add, change or delete in the admin; actions and views that only read stay available.

    Mix in before `admin.ModelAdmin`. Who may view is still the subclass's (or the permission
    table's) business."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
