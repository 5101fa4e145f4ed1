"""The session engine (SESSION_ENGINE): Django's database sessions, stored under the key's SHA-256.

Django's db backend keeps the session key in `django_session` exactly as the browser sends it in
the cookie, so whoever reads a database dump can replay any live session (an admin's included,
OTP verification and all). This store keeps the rows in `core.Session` under the SHA-256 of the
key: the cookie still carries the key, and every lookup hashes it first. A session key is 32
random characters, so a plain (unkeyed) digest cannot be reversed. The session data is an
encrypted column (field keyring); a row that no key of the keyring opens is no session.

Django 5.2's `SessionStore` touches the key column in exactly these methods (loading, existence,
saving, deleting, each with an async twin); they are overridden here one for one, and
`tests/core/test_sessions.py` fails if an upgrade adds another.
"""

import hashlib
import logging

from django.contrib.sessions.backends.db import SessionStore as DatabaseSessionStore
from django.core.exceptions import SuspiciousOperation
from django.utils import timezone

from core.crypto import DecryptionError


def session_key_digest(session_key: str) -> str:
    """What the table stores for `session_key`: SHA-256, hex."""
    return hashlib.sha256(session_key.encode()).hexdigest()


def _log_suspicious(exc) -> None:
    if isinstance(exc, SuspiciousOperation):
        logging.getLogger(f"django.security.{exc.__class__.__name__}").warning(str(exc))
    elif isinstance(exc, DecryptionError):
        logging.getLogger(__name__).warning("a session no key of the keyring opens was ignored")


class SessionStore(DatabaseSessionStore):
    @classmethod
    def get_model_class(cls):
        from core.models import Session

        return Session

    def _stored(self, session_key=None) -> str:
        return session_key_digest(session_key if session_key is not None else self.session_key)

    def _get_session_from_db(self):
        try:
            return self.model.objects.get(session_key=self._stored(), expire_date__gt=timezone.now())
        except (self.model.DoesNotExist, SuspiciousOperation, DecryptionError) as exc:
            _log_suspicious(exc)
            self._session_key = None

    async def _aget_session_from_db(self):
        try:
            return await self.model.objects.aget(session_key=self._stored(), expire_date__gt=timezone.now())
        except (self.model.DoesNotExist, SuspiciousOperation, DecryptionError) as exc:
            _log_suspicious(exc)
            self._session_key = None

    def exists(self, session_key):
        return self.model.objects.filter(session_key=self._stored(session_key)).exists()

    async def aexists(self, session_key):
        return await self.model.objects.filter(session_key=self._stored(session_key)).aexists()

    def create_model_instance(self, data):
        return self.model(
            session_key=session_key_digest(self._get_or_create_session_key()),
            session_data=self.encode(data),
            expire_date=self.get_expiry_date(),
        )

    async def acreate_model_instance(self, data):
        return self.model(
            session_key=session_key_digest(await self._aget_or_create_session_key()),
            session_data=self.encode(data),
            expire_date=await self.aget_expiry_date(),
        )

    def delete(self, session_key=None):
        if session_key is None:
            if self.session_key is None:
                return
            session_key = self.session_key
        self.model.objects.filter(session_key=self._stored(session_key)).delete()

    async def adelete(self, session_key=None):
        if session_key is None:
            if self.session_key is None:
                return
            session_key = self.session_key
        await self.model.objects.filter(session_key=self._stored(session_key)).adelete()
