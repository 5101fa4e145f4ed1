"""The fixed vocabulary of the audit log: what happened, how it ended, who did it.

Other apps import these enums; adding a member is the only edit they should need here.
"""

from django.db import models
from django.utils.translation import gettext_lazy as _


class Action(models.TextChoices):
    # calls to the partner platform (the ones reconciliation matches with the partner's log)
    PARTNER_TOKEN = "partner.token", _("partner: token request")
    PARTNER_OPEN = "partner.open", _("partner: open device")
    PARTNER_WEBRTC_SESSION = "partner.webrtc_session", _("partner: start video session")
    PARTNER_FACE_ENROL = "partner.face_enrol", _("partner: enrol face")
    PARTNER_FACE_DELETE = "partner.face_delete", _("partner: delete face")
    PARTNER_ALLOWLIST_FULL = "partner.allowlist_full", _("partner: full allowlist sync")
    PARTNER_ALLOWLIST_DELTA = "partner.allowlist_delta", _("partner: incremental allowlist sync")
    PARTNER_EVENT_OUT = "partner.event_out", _("partner: event sent")
    # decisions asked by the partner
    ACCESS_DECISION = "access.decision", _("access decision")
    # resident actions
    RESIDENT_OPEN = "resident.open", _("resident: open")
    RESIDENT_VIDEO = "resident.video", _("resident: video")
    RESIDENT_VEHICLE_CREATE = "resident.vehicle_create", _("resident: vehicle added")
    RESIDENT_VEHICLE_UPDATE = "resident.vehicle_update", _("resident: vehicle changed")
    RESIDENT_VEHICLE_DELETE = "resident.vehicle_delete", _("resident: vehicle removed")
    RESIDENT_GUEST_PASS_CREATE = "resident.guest_pass_create", _("resident: guest pass created")
    RESIDENT_GUEST_PASS_REVOKE = "resident.guest_pass_revoke", _("resident: guest pass revoked")
    RESIDENT_DATA_EXPORT = "resident.data_export", _("resident: data export")
    GRANT_CHECK = "grant.check", _("grant check")
    # staff actions at a device (the portal's remote open for a courier or a visitor)
    STAFF_OPEN = "staff.open", _("staff: remote open")
    # consent and biometrics
    CONSENT_GIVE = "consent.give", _("consent given")
    CONSENT_REVOKE = "consent.revoke", _("consent revoked")
    CONSENT_EXPIRE = "consent.expire", _("consent expired")
    BIOMETRIC_ENROL = "biometric.enrol", _("biometric enrolment")
    BIOMETRIC_DELETE_RECEIPT = "biometric.delete_receipt", _("biometric deletion confirmed")
    # inbound webhooks and the outbox
    WEBHOOK_RECEIVED = "webhook.received", _("webhook received")
    WEBHOOK_REJECTED = "webhook.rejected", _("webhook rejected")
    OUTBOX_DELIVERED = "outbox.delivered", _("outbox message delivered")
    OUTBOX_DEAD_LETTERED = "outbox.dead_lettered", _("outbox message dead-lettered")
    # security
    SECURITY_ALERT = "security.alert", _("security alert")
    SECURITY_PARTNER_SUSPENDED = "security.partner_suspended", _("partner suspended")
    SECURITY_PARTNER_REINSTATED = "security.partner_reinstated", _("partner reinstated")
    SECURITY_LOGIN_LOCKED = "security.login_locked", _("login locked")
    # sign-in: logins (resident and staff; local, provider or directory), OAuth2 tokens
    AUTH_LOGIN = "auth.login", _("sign-in")
    AUTH_TOKEN_ISSUE = "auth.token_issue", _("OAuth2 token issued")
    AUTH_TOKEN_REFRESH = "auth.token_refresh", _("OAuth2 token refreshed")
    AUTH_TOKEN_REFUSED = "auth.token_refused", _("OAuth2 token request refused")
    AUTH_TOKEN_REVOKE = "auth.token_revoke", _("OAuth2 tokens revoked")
    # identities, invitations and the directory
    IDENTITY_LINK_CREATE = "identity.link_create", _("provider identity linked")
    IDENTITY_LINK_DELETE = "identity.link_delete", _("provider identity unlinked")
    IDENTITY_INVITATION_CREATE = "identity.invitation_create", _("invitation created")
    IDENTITY_INVITATION_SEND = "identity.invitation_send", _("invitation sent")
    IDENTITY_INVITATION_REDEEM = "identity.invitation_redeem", _("invitation link used")
    IDENTITY_PASSWORD_RESET = "identity.password_reset", _("password reset requested")
    IDENTITY_TOTP_ENROL = "identity.totp_enrol", _("second factor enrolled")
    IDENTITY_DIRECTORY_SYNC = "identity.directory_sync", _("directory account synchronised")
    # administration
    ADMIN_CHANGE = "admin.change", _("admin change")
    # master data from the developer's systems (integration API) and the admin's spreadsheet import
    MASTERDATA_BATCH = "masterdata.batch", _("master data: batch from a source system")
    MASTERDATA_IMPORT = "masterdata.import", _("master data: spreadsheet import")
    # retention: residents' activity records older than their period deleted
    RETENTION_PRUNED = "retention.pruned", _("old activity records deleted")
    # the audit log itself
    AUDIT_SEALED = "audit.sealed", _("audit log sealed")
    AUDIT_VERIFIED = "audit.verified", _("audit log verified")
    AUDIT_EXPORTED = "audit.exported", _("audit log exported")
    AUDIT_PRUNED = "audit.pruned", _("audit log pruned")
    AUDIT_RECONCILED = "audit.reconciled", _("audit log reconciled with a partner")


class Outcome(models.TextChoices):
    SUCCESS = "success", _("success")
    FAILURE = "failure", _("failure")
    DENIED = "denied", _("denied")
    ERROR = "error", _("error")
    TIMEOUT = "timeout", _("timeout")
    UNAVAILABLE = "unavailable", _("unavailable")


class ActorKind(models.TextChoices):
    RESIDENT = "resident", _("resident")
    STAFF = "staff", _("staff")
    PARTNER = "partner", _("partner")
    SYSTEM = "system", _("system")


# Our partner-call actions -> the partner's `operation` names in GET /v1/audit (see reconcile.py).
PARTNER_CALL_ACTIONS = (
    Action.PARTNER_OPEN,
    Action.PARTNER_WEBRTC_SESSION,
    Action.PARTNER_FACE_ENROL,
    Action.PARTNER_FACE_DELETE,
    Action.PARTNER_ALLOWLIST_FULL,
    Action.PARTNER_ALLOWLIST_DELTA,
)
