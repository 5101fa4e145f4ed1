"""The fixed vocabulary of the audit log: what happened, how it ended, who did it.

Other apps import these enums; adding a member is the only edit they should need here.
"""

from django.db import models


class Action(models.TextChoices):
    # calls to the partner platform (the ones reconciliation matches with the partner's log)
    PARTNER_TOKEN = "partner.token", "partner: token request"
    PARTNER_OPEN = "partner.open", "partner: open device"
    PARTNER_WEBRTC_SESSION = "partner.webrtc_session", "partner: start video session"
    PARTNER_FACE_ENROL = "partner.face_enrol", "partner: enrol face"
    PARTNER_FACE_DELETE = "partner.face_delete", "partner: delete face"
    PARTNER_ALLOWLIST_FULL = "partner.allowlist_full", "partner: full allowlist sync"
    PARTNER_ALLOWLIST_DELTA = "partner.allowlist_delta", "partner: incremental allowlist sync"
    PARTNER_EVENT_OUT = "partner.event_out", "partner: event sent"
    # decisions asked by the partner
    ACCESS_DECISION = "access.decision", "access decision"
    # resident actions
    RESIDENT_OPEN = "resident.open", "resident: open"
    RESIDENT_VIDEO = "resident.video", "resident: video"
    RESIDENT_VEHICLE_CREATE = "resident.vehicle_create", "resident: vehicle added"
    RESIDENT_VEHICLE_UPDATE = "resident.vehicle_update", "resident: vehicle changed"
    RESIDENT_VEHICLE_DELETE = "resident.vehicle_delete", "resident: vehicle removed"
    RESIDENT_GUEST_PASS_CREATE = "resident.guest_pass_create", "resident: guest pass created"
    RESIDENT_GUEST_PASS_REVOKE = "resident.guest_pass_revoke", "resident: guest pass revoked"
    RESIDENT_DATA_EXPORT = "resident.data_export", "resident: data export"
    GRANT_CHECK = "grant.check", "grant check"
    # consent and biometrics
    CONSENT_GIVE = "consent.give", "consent given"
    CONSENT_REVOKE = "consent.revoke", "consent revoked"
    CONSENT_EXPIRE = "consent.expire", "consent expired"
    BIOMETRIC_ENROL = "biometric.enrol", "biometric enrolment"
    BIOMETRIC_DELETE_RECEIPT = "biometric.delete_receipt", "biometric deletion confirmed"
    # inbound webhooks and the outbox
    WEBHOOK_RECEIVED = "webhook.received", "webhook received"
    WEBHOOK_REJECTED = "webhook.rejected", "webhook rejected"
    OUTBOX_DELIVERED = "outbox.delivered", "outbox message delivered"
    OUTBOX_DEAD_LETTERED = "outbox.dead_lettered", "outbox message dead-lettered"
    # security
    SECURITY_ALERT = "security.alert", "security alert"
    SECURITY_PARTNER_SUSPENDED = "security.partner_suspended", "partner suspended"
    SECURITY_PARTNER_REINSTATED = "security.partner_reinstated", "partner reinstated"
    SECURITY_LOGIN_LOCKED = "security.login_locked", "login locked"
    # sign-in: logins (resident and staff; local, provider or directory), OAuth2 tokens
    AUTH_LOGIN = "auth.login", "sign-in"
    AUTH_TOKEN_ISSUE = "auth.token_issue", "OAuth2 token issued"
    AUTH_TOKEN_REFRESH = "auth.token_refresh", "OAuth2 token refreshed"
    AUTH_TOKEN_REFUSED = "auth.token_refused", "OAuth2 token request refused"
    AUTH_TOKEN_REVOKE = "auth.token_revoke", "OAuth2 tokens revoked"
    # identities, invitations and the directory
    IDENTITY_LINK_CREATE = "identity.link_create", "provider identity linked"
    IDENTITY_LINK_DELETE = "identity.link_delete", "provider identity unlinked"
    IDENTITY_INVITATION_CREATE = "identity.invitation_create", "invitation created"
    IDENTITY_INVITATION_SEND = "identity.invitation_send", "invitation sent"
    IDENTITY_INVITATION_REDEEM = "identity.invitation_redeem", "invitation link used"
    IDENTITY_PASSWORD_RESET = "identity.password_reset", "password reset requested"
    IDENTITY_TOTP_ENROL = "identity.totp_enrol", "second factor enrolled"
    IDENTITY_DIRECTORY_SYNC = "identity.directory_sync", "directory account synchronised"
    # administration
    ADMIN_CHANGE = "admin.change", "admin change"
    # master data from the developer's systems (integration API) and the admin's spreadsheet import
    MASTERDATA_BATCH = "masterdata.batch", "master data: batch from a source system"
    MASTERDATA_IMPORT = "masterdata.import", "master data: spreadsheet import"
    # the audit log itself
    AUDIT_SEALED = "audit.sealed", "audit log sealed"
    AUDIT_VERIFIED = "audit.verified", "audit log verified"
    AUDIT_EXPORTED = "audit.exported", "audit log exported"
    AUDIT_PRUNED = "audit.pruned", "audit log pruned"
    AUDIT_RECONCILED = "audit.reconciled", "audit log reconciled with a partner"


class Outcome(models.TextChoices):
    SUCCESS = "success", "success"
    FAILURE = "failure", "failure"
    DENIED = "denied", "denied"
    ERROR = "error", "error"
    TIMEOUT = "timeout", "timeout"
    UNAVAILABLE = "unavailable", "unavailable"


class ActorKind(models.TextChoices):
    RESIDENT = "resident", "resident"
    STAFF = "staff", "staff"
    PARTNER = "partner", "partner"
    SYSTEM = "system", "system"


# Our partner-call actions -> the partner's `operation` names in GET /v1/audit (see reconcile.py).
PARTNER_CALL_ACTIONS = (
    Action.PARTNER_OPEN,
    Action.PARTNER_WEBRTC_SESSION,
    Action.PARTNER_FACE_ENROL,
    Action.PARTNER_FACE_DELETE,
    Action.PARTNER_ALLOWLIST_FULL,
    Action.PARTNER_ALLOWLIST_DELTA,
)
