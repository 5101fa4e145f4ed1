"""Admin of the outbox: what waits for a partner, what was delivered, what was dead-lettered.

Read-only rows; the one action, "Retry now", calls `partners.outbox.services.outbox_retry_now`;
messages it refuses (delivered ones, face uploads cancelled on consent revocation) are skipped
with an error message, and their page says why they cannot be retried.
Platform operations, not a management company's data: visible to security admins and
superusers only. The face JWE never shows (only whether the payload still holds one).
"""

from django.contrib import admin, messages
from django.utils import timezone
from django.utils.html import format_html_join
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from core.portal.readonly import ReadOnlyAdminMixin
from core.security.roles import SECURITY_ADMIN, has_role
from partners.models import OutboxMessage
from partners.outbox.services import outbox_retry_now, retry_refusal


def _may_operate(request) -> bool:
    return request.user.is_superuser or has_role(request.user, SECURITY_ADMIN)


class DueFilter(admin.SimpleListFilter):
    title = gettext_lazy("delivery")
    parameter_name = "delivery"

    def lookups(self, request, model_admin):
        return [("due", gettext_lazy("pending and due")), ("waiting", gettext_lazy("pending, backing off")),
                ("dead", gettext_lazy("dead-lettered"))]

    def queryset(self, request, queryset):
        now = timezone.now()
        if self.value() == "due":
            return queryset.filter(status=OutboxMessage.Status.PENDING, next_attempt_at__lte=now)
        if self.value() == "waiting":
            return queryset.filter(status=OutboxMessage.Status.PENDING, next_attempt_at__gt=now)
        if self.value() == "dead":
            return queryset.filter(status=OutboxMessage.Status.DEAD)
        return queryset


@admin.register(OutboxMessage)
class OutboxMessageAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("id", "partner", "operation", "ordering_key", "status", "attempts", "next_attempt_at",
                    "last_error", "last_http_status", "created_at", "delivered_at")
    list_filter = ("status", DueFilter, "operation", "partner")
    search_fields = ("=idempotency_key", "=ordering_key")
    date_hierarchy = "created_at"
    ordering = ("-id",)
    actions = ["retry_now"]
    fields = ("partner", "operation", "ordering_key", "idempotency_key", "status", "attempts", "next_attempt_at",
              "last_attempt_at", "dispatched_at", "created_at", "delivered_at", "dead_lettered_at", "last_error",
              "last_http_status", "payload_summary", "result", "retry")
    readonly_fields = fields

    def has_module_permission(self, request):
        return _may_operate(request)

    def has_view_permission(self, request, obj=None):
        return _may_operate(request)

    @admin.display(description=gettext_lazy("payload"))
    def payload_summary(self, obj):
        rows = []
        for name, value in sorted(obj.payload.items()):
            if name == "jwe":
                value = (_("(encrypted photo, kept until acknowledged)") if value
                         else _("(purged after acknowledgement)"))
            elif isinstance(value, list):
                value = _("%(count)s item(s)") % {"count": len(value)}
            rows.append((name, value))
        return format_html_join("", "<div><b>{}</b>: {}</div>", rows)

    @admin.display(description=gettext_lazy("retry now"))
    def retry(self, obj):
        return retry_refusal(obj) or _("allowed (select it in the list and run “Retry now”)")

    @admin.action(description=gettext_lazy("Retry now (dead-lettered or waiting messages)"))
    def retry_now(self, request, queryset):
        if not _may_operate(request):
            self.message_user(request, _("Only security admins may retry outbox messages."), messages.ERROR)
            return
        retried = skipped = 0
        refused = []
        for message in queryset:
            if message.status == OutboxMessage.Status.DELIVERED:
                skipped += 1
                continue
            try:
                outbox_retry_now(message=message, actor=request.user)
            except ValueError as error:
                refused.append(f"#{message.pk}: {error}")
                continue
            retried += 1
        self.message_user(
            request, _("%(retried)s message(s) queued for delivery; %(skipped)s delivered one(s) skipped.")
            % {"retried": retried, "skipped": skipped})
        if refused:
            self.message_user(request, _("Not retried: %(refused)s") % {"refused": "; ".join(refused)}, messages.ERROR)
