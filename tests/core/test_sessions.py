"""Sessions are stored under the SHA-256 of their key (core.auth.sessions): the cookie works, the
table holds nothing a browser could present."""

import base64
import hashlib
import inspect
import re

import pytest
from django.contrib.auth import get_user_model
from django.contrib.sessions.backends.db import SessionStore as DjangoSessionStore
from django.contrib.sessions.models import Session as DjangoSession
from django.db import connection

from core.auth.sessions import SessionStore, session_key_digest
from core.models import Session

pytestmark = pytest.mark.django_db

PASSWORD = "correct-horse-battery-staple"


def test_a_login_session_is_stored_under_its_digest_and_still_works(client):
    get_user_model().objects.create_user("resident-s", password=PASSWORD)
    client.get("/accounts/login/")  # an anonymous session first (CSRF), rotated by the login
    response = client.post("/accounts/login/", {"username": "resident-s", "password": PASSWORD, "next": "/healthz"})
    assert response.status_code == 302
    key = client.cookies["sessionid"].value
    assert not Session.objects.filter(session_key=key).exists()
    assert not DjangoSession.objects.exists()
    stored = Session.objects.get()  # one session: the anonymous one was replaced at login
    assert stored.session_key == hashlib.sha256(key.encode()).hexdigest()
    with connection.cursor() as cursor:
        cursor.execute("SELECT session_data FROM core_session")
        assert cursor.fetchone()[0].startswith("v1:")  # the data is encrypted too
    assert SessionStore(key).load()["_auth_user_id"]
    assert SessionStore(stored.session_key).load() == {}  # the digest is no key
    client.post("/o/authorize/")  # any page: the cookie is accepted (no redirect to the login)
    assert client.session["_auth_user_id"] == str(get_user_model().objects.get(username="resident-s").pk)


def test_logout_and_flush_remove_the_row():
    store = SessionStore()
    store["x"] = 1
    store.save()
    assert store.exists(store.session_key)
    assert Session.objects.filter(session_key=session_key_digest(store.session_key)).exists()
    old = store.session_key
    store.cycle_key()
    assert not Session.objects.filter(session_key=session_key_digest(old)).exists()
    assert SessionStore(store.session_key).load() == {"x": 1}
    store.flush()
    assert not Session.objects.exists()


def test_every_key_lookup_of_djangos_store_is_overridden():
    """Django's db store touches the key column in these methods; an upgrade adding one fails here."""
    touching = {name for name, member in vars(DjangoSessionStore).items()
                if callable(member) and not name.startswith("__")
                and re.search(r"session_key=", inspect.getsource(member))}
    assert touching == {"_get_session_from_db", "_aget_session_from_db", "exists", "aexists",
                        "create_model_instance", "acreate_model_instance", "delete", "adelete"}
    for name in touching:
        assert name in vars(SessionStore), name


def test_a_session_no_key_opens_is_no_session(settings):
    store = SessionStore()
    store["x"] = 1
    store.save()
    settings.FIELD_ENCRYPTION_KEYS = "other:" + base64.b64encode(b"k" * 32).decode()
    assert SessionStore(store.session_key).load() == {}
