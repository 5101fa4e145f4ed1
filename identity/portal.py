"""What identity adds to a resident's page in the portal (access.portal.residents): how the
resident signs in - the app account, identity-provider links - and their invitations and
password-reset links with their state (never a token)."""

from django.utils import timezone
from django.utils.translation import gettext as _

from access.portal.residents import ResidentSection
from identity.models import Invitation, ProviderLink


def invitation_state(invitation: Invitation, now) -> tuple[str, str]:
    if invitation.used_at is not None:
        return _("used"), "ok"
    if invitation.revoked_at is not None:
        return _("replaced or revoked"), "info"
    if invitation.expires_at <= now:
        return _("expired unused"), "problem"
    if invitation.sent_at is None:
        return _("being sent"), "info"
    return _("sent, waiting"), "info"


def sign_in_section(request, resident) -> ResidentSection | None:
    user = request.user
    if not user.has_perm("identity.view_invitation"):
        return None
    now = timezone.now()
    invitations = Invitation.objects.filter(resident=resident).order_by("-created_at")[:10]
    links = (ProviderLink.objects.filter(resident=resident).order_by("-created_at")
             if user.has_perm("identity.view_providerlink") else ProviderLink.objects.none())
    return ResidentSection(template="identity/portal/resident_sign_in.html", context={
        "username": resident.user.get_username(),
        "has_password": resident.user.has_usable_password(),
        "links": list(links),
        "invitations": [{"invitation": i, "state": invitation_state(i, now)} for i in invitations],
    })
