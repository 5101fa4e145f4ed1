"""Signal receivers: the contact index follows residents; sign-in events reach the audit log.

`access` cannot call `identity` (it sits below it), so the index listens to Resident saves and to
residents written in bulk (`access.signals.residents_created`).
"""

from axes.signals import user_locked_out
from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.db.models.signals import post_save
from django.dispatch import receiver
from oauth2_provider.signals import app_authorized

from access.models import Resident
from access.signals import residents_created
from identity import sessions, signin_audit  # noqa: F401 - sessions connects its receiver
from identity.contacts import index_resident, index_residents


@receiver(post_save, sender=Resident, dispatch_uid="identity.index_resident_contacts")
def _index_contacts(sender, instance, raw=False, **kwargs):
    if raw:
        return
    index_resident(resident_id=instance.pk, phone=instance.phone, email=instance.email)


@receiver(residents_created, dispatch_uid="identity.index_residents_contacts")
def _index_many(sender, residents, **kwargs):
    index_residents(residents=residents)


@receiver(user_logged_in, dispatch_uid="identity.audit_login")
def _logged_in(sender, request, user, **kwargs):
    signin_audit.login_succeeded(request=request, user=user)


@receiver(user_login_failed, dispatch_uid="identity.audit_login_failed")
def _login_failed(sender, credentials, request=None, **kwargs):
    signin_audit.login_failed(request=request, credentials=credentials)


@receiver(user_locked_out, dispatch_uid="identity.audit_locked_out")
def _locked_out(sender, request, username, ip_address, **kwargs):
    signin_audit.login_locked(request=request, username=username, ip_address=ip_address)


@receiver(app_authorized, dispatch_uid="identity.audit_token_issued")
def _token_issued(sender, request, token, **kwargs):
    signin_audit.token_issued(request=request, token=token)
