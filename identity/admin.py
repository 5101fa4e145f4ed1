"""Admin of the identity app: provider links (link, unlink), invitations (read-only), directory
accounts (read-only), and the residents' actions "invite", "revoke sessions and tokens" and
"unlink provider identity", added to the Resident admin of `access` (identity sits above it).
"""

from django.contrib import admin, messages
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from access.admin import ScopedServiceAdmin
from access.models import Resident
from access.portal.residents import add_resident_section
from core.portal.isolation import CompanyScopedModelAdmin
from core.portal.readonly import ReadOnlyAdminMixin
from identity.models import DirectoryAccount, Invitation, ProviderLink
from identity.portal import sign_in_section
from identity.services.invitations import invitation_create_bulk
from identity.services.links import provider_link_create, provider_link_delete
from identity.services.revocation import user_access_revoke


@admin.register(ProviderLink)
class ProviderLinkAdmin(ScopedServiceAdmin):
    company_path = "resident__company"
    list_display = ("__str__", "resident", "issuer", "origin", "created_at", "last_login_at")
    list_filter = ("origin", "issuer")
    search_fields = ("=subject", "=resident__id")
    autocomplete_fields = ("resident",)
    readonly_fields = ("issuer", "origin", "created_at", "last_login_at")

    def get_fields(self, request, obj=None):
        return ("resident", "subject") if obj is None else ("resident", "subject", *self.readonly_fields)

    def has_change_permission(self, request, obj=None):
        return False if obj is not None else super().has_change_permission(request, obj)

    def service_save(self, request, current, data, change):
        return provider_link_create(resident=data["resident"], subject=data["subject"], actor=request.user)

    def delete_model(self, request, obj):
        provider_link_delete(link=obj, actor=request.user)

    def delete_queryset(self, request, queryset):
        for link in queryset.select_related("resident"):
            provider_link_delete(link=link, actor=request.user)


@admin.register(Invitation)
class InvitationAdmin(ReadOnlyAdminMixin, CompanyScopedModelAdmin):
    company_path = "resident__company"
    list_display = ("__str__", "resident", "purpose", "channel", "created_at", "sent_at", "expires_at", "used_at",
                    "revoked_at")
    list_filter = ("purpose", "channel")
    fields = ("resident", "purpose", "channel", "created_by", "created_at", "sent_at", "expires_at", "used_at",
              "revoked_at")


@admin.register(DirectoryAccount)
class DirectoryAccountAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("user", "synced_at")
    fields = ("user", "dn", "synced_at")
    search_fields = ("user__username",)


def _invite(model_admin, request, queryset, channel: str) -> None:
    created, refused = invitation_create_bulk(
        residents=queryset.select_related("user", "company"), channel=channel, actor=request.user
    )
    if created:
        model_admin.message_user(request, _("%(count)s invitation(s) queued.") % {"count": len(created)},
                                 messages.SUCCESS)
    for resident, error in refused:
        model_admin.message_user(request, f"{resident}: {'; '.join(error.messages)}", messages.WARNING)


@admin.action(description=gettext_lazy("Invite by e-mail (one-time link to set a password)"), permissions=["change"])
def invite_by_email(model_admin, request, queryset):
    _invite(model_admin, request, queryset, Invitation.Channel.EMAIL)


@admin.action(description=gettext_lazy("Invite by SMS (one-time link to set a password)"), permissions=["change"])
def invite_by_sms(model_admin, request, queryset):
    _invite(model_admin, request, queryset, Invitation.Channel.SMS)


@admin.action(description=gettext_lazy("Revoke app sessions and tokens (sign out everywhere)"), permissions=["change"])
def revoke_access(model_admin, request, queryset):
    total = 0
    for resident in queryset.select_related("user"):
        total += user_access_revoke(user=resident.user, reason="admin", actor=request.user, request=request)
    model_admin.message_user(request, _("Tokens revoked: %(count)s; browser sessions ended.") % {"count": total},
                             messages.SUCCESS)


@admin.action(description=gettext_lazy("Unlink the identity provider account"), permissions=["change"])
def unlink_provider(model_admin, request, queryset):
    links = ProviderLink.objects.filter(resident__in=queryset).select_related("resident")
    count = 0
    for link in links:
        provider_link_delete(link=link, actor=request.user)
        count += 1
    model_admin.message_user(request, _("Provider links removed: %(count)s.") % {"count": count}, messages.SUCCESS)


def extend_resident_admin(site=admin.site) -> None:
    """Add identity's actions to the Resident admin that `access` registered (idempotent)."""
    resident_admin = site.get_model_admin(Resident)
    extra = tuple(a for a in (invite_by_email, invite_by_sms, revoke_access, unlink_provider)
                  if a not in resident_admin.actions)
    resident_admin.actions = (*resident_admin.actions, *extra)


extend_resident_admin()
add_resident_section(sign_in_section)
