"""Residents sign in with the phone or e-mail their management company registered.

Django's username of a resident is a random handle nobody remembers; this backend finds the
resident through the contact blind index (identity.contacts) and checks the password. Staff
accounts never sign in this way.
"""

from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend

from access.models import Resident
from identity.contacts import guess_kind, resident_ids_with


class ResidentContactBackend(ModelBackend):
    def authenticate(self, request, username=None, password=None, **kwargs):
        kind = guess_kind(username or "")
        if kind is None or password is None:
            return None
        resident_ids = resident_ids_with(kind, username)
        user = None
        if len(resident_ids) == 1:
            user = Resident.objects.select_related("user").get(pk=resident_ids[0]).user
        if user is None or user.is_staff:
            get_user_model()().set_password(password)  # the same work as a real check (timing)
            return None
        if user.check_password(password) and self.user_can_authenticate(user):
            return user
        return None
