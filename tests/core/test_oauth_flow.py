"""The OAuth2 authorisation server end to end, over real HTTP with a real OAuth2 client library.

Authorization Code + PKCE (S256 only) for the public mobile app, refresh rotation with reuse
detection, RFC 7009 revocation, RFC 7662 introspection, and per-client scope policy.
"""

import base64
import hashlib
import re
import secrets
from urllib.parse import parse_qs, urlparse

import pytest
import requests
from django.contrib.auth import get_user_model
from oauth2_provider.models import get_application_model
from requests_oauthlib import OAuth2Session

from core.api.permissions import MissingScope, scope_required

pytestmark = pytest.mark.django_db(transaction=True)

Application = get_application_model()
REDIRECT_URI = "ru.smarthome.app:/oauth2redirect"
PASSWORD = "correct-horse-battery-staple"


@pytest.fixture(autouse=True)
def _oauthlib_over_http(monkeypatch):
    # live_server speaks plain HTTP on loopback; production is HTTPS only.
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")


@pytest.fixture
def mobile_app():
    return Application.objects.create(
        name="Mobile app",
        client_id="mobile-app",
        client_type=Application.CLIENT_PUBLIC,
        authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
        redirect_uris=REDIRECT_URI,
        skip_authorization=False,
        algorithm="",
    )


@pytest.fixture
def resident_user():
    return get_user_model().objects.create_user("resident1", password=PASSWORD)


@pytest.fixture
def gateway(settings):
    secret = "gateway-secret-0123456789"
    app = Application.objects.create(
        name="tenant-core-app",
        client_id="tenant-core-app",
        client_secret=secret,
        client_type=Application.CLIENT_CONFIDENTIAL,
        authorization_grant_type=Application.GRANT_CLIENT_CREDENTIALS,
    )
    settings.OAUTH_SERVICE_CLIENTS = {"tenant-core-app": ["introspection"]}
    return app, secret


def pkce_pair():
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def browser_login(base_url: str, username: str, password: str) -> requests.Session:
    browser = requests.Session()
    page = browser.get(f"{base_url}/accounts/login/")
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    response = browser.post(
        f"{base_url}/accounts/login/",
        data={"username": username, "password": password, "csrfmiddlewaretoken": csrf, "next": "/healthz"},
        headers={"Referer": f"{base_url}/accounts/login/"},
        allow_redirects=False,
    )
    assert response.status_code == 302, response.text[:500]
    return browser


def authorize(base_url, browser, *, scope, challenge, method="S256"):
    """Resident confirms the consent screen; returns the redirect's query parameters."""
    params = {
        "response_type": "code", "client_id": "mobile-app", "redirect_uri": REDIRECT_URI,
        "scope": scope, "state": "st-1", "code_challenge": challenge, "code_challenge_method": method,
    }
    page = browser.get(f"{base_url}/o/authorize/", params=params, allow_redirects=False)
    if page.status_code != 200:
        return page
    assert "Видеть ваши двери" in page.text  # the consent screen speaks Russian
    assert "See your doors" in page.text  # and English
    form = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page.text))
    form["allow"] = "Authorize"
    confirmed = browser.post(
        f"{base_url}/o/authorize/", data=form, headers={"Referer": page.url}, allow_redirects=False
    )
    assert confirmed.status_code == 302, confirmed.text[:500]
    return confirmed


def full_pkce_flow(base_url, scope="devices:read doors:open"):
    browser = browser_login(base_url, "resident1", PASSWORD)
    verifier, challenge = pkce_pair()
    redirect = authorize(base_url, browser, scope=scope, challenge=challenge)
    location = redirect.headers["Location"]
    assert location.startswith(REDIRECT_URI)
    query = parse_qs(urlparse(location).query)
    assert query["state"] == ["st-1"]
    oauth = OAuth2Session(client_id="mobile-app", redirect_uri=REDIRECT_URI, scope=scope.split())
    token = oauth.fetch_token(
        f"{base_url}/o/token/", code=query["code"][0], code_verifier=verifier, include_client_id=True,
    )
    return token


def api_me(base_url, access_token):
    return requests.get(f"{base_url}/api/v1/me", headers={"Authorization": f"Bearer {access_token}"}, timeout=10)


def test_full_pkce_flow_gives_a_working_token(live_server, mobile_app, resident_user):
    token = full_pkce_flow(live_server.url)
    assert token["token_type"] == "Bearer"
    assert 0 < token["expires_in"] <= 300
    assert set(token["scope"]) == {"devices:read", "doors:open"}
    me = api_me(live_server.url, token["access_token"])
    assert me.status_code == 200
    assert me.json()["scopes"] == ["devices:read", "doors:open"]
    assert me.json()["actor_ref"].startswith("user:")


def test_authorize_without_pkce_or_with_plain_is_refused(live_server, mobile_app, resident_user):
    browser = browser_login(live_server.url, "resident1", PASSWORD)
    verifier, _ = pkce_pair()
    plain = authorize(live_server.url, browser, scope="devices:read", challenge=verifier, method="plain")
    assert "code=" not in plain.headers.get("Location", "")
    missing = browser.get(
        f"{live_server.url}/o/authorize/",
        params={"response_type": "code", "client_id": "mobile-app", "redirect_uri": REDIRECT_URI,
                "scope": "devices:read"},
        allow_redirects=False,
    )
    assert "code=" not in missing.headers.get("Location", "")


def test_wrong_code_verifier_is_refused(live_server, mobile_app, resident_user):
    browser = browser_login(live_server.url, "resident1", PASSWORD)
    _, challenge = pkce_pair()
    redirect = authorize(live_server.url, browser, scope="devices:read", challenge=challenge)
    code = parse_qs(urlparse(redirect.headers["Location"]).query)["code"][0]
    response = requests.post(
        f"{live_server.url}/o/token/",
        data={"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI,
              "client_id": "mobile-app", "code_verifier": "x" * 50},
        timeout=10,
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


def test_resident_app_cannot_ask_for_partner_scopes(live_server, mobile_app, resident_user):
    browser = browser_login(live_server.url, "resident1", PASSWORD)
    _, challenge = pkce_pair()
    response = authorize(live_server.url, browser, scope="access:decide", challenge=challenge)
    location = response.headers.get("Location", "")
    assert "code=" not in location
    assert "invalid_scope" in location or response.status_code == 400


def test_refresh_rotates_and_a_replayed_refresh_token_revokes_the_family(live_server, mobile_app, resident_user):
    first = full_pkce_flow(live_server.url)
    refresh_url = f"{live_server.url}/o/token/"

    def refresh(refresh_token):
        return requests.post(
            refresh_url,
            data={"grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": "mobile-app"},
            timeout=10,
        )

    second = refresh(first["refresh_token"])
    assert second.status_code == 200, second.text
    second = second.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert api_me(live_server.url, second["access_token"]).status_code == 200

    replay = refresh(first["refresh_token"])  # an attacker replays the old refresh token
    assert replay.status_code == 400
    assert replay.json()["error"] == "invalid_grant"
    # the whole family is revoked: the legitimate newest tokens stop working too
    assert api_me(live_server.url, second["access_token"]).status_code == 401
    assert refresh(second["refresh_token"]).status_code == 400


def test_revocation_and_introspection(live_server, mobile_app, resident_user, gateway):
    _, gateway_secret = gateway
    token = full_pkce_flow(live_server.url)
    gateway_token = requests.post(
        f"{live_server.url}/o/token/",
        data={"grant_type": "client_credentials", "scope": "introspection"},
        auth=("tenant-core-app", gateway_secret),
        timeout=10,
    ).json()["access_token"]

    def introspect(candidate):
        return requests.post(
            f"{live_server.url}/o/introspect/", data={"token": candidate},
            headers={"Authorization": f"Bearer {gateway_token}"}, timeout=10,
        )

    active = introspect(token["access_token"])
    assert active.status_code == 200
    assert active.json()["active"] is True
    assert set(active.json()["scope"].split()) == {"devices:read", "doors:open"}

    revoked = requests.post(
        f"{live_server.url}/o/revoke_token/",
        data={"token": token["access_token"], "client_id": "mobile-app"},
        timeout=10,
    )
    assert revoked.status_code == 200
    assert introspect(token["access_token"]).json()["active"] is False
    assert api_me(live_server.url, token["access_token"]).status_code == 401


def test_introspection_needs_the_introspection_scope(live_server, mobile_app, resident_user):
    token = full_pkce_flow(live_server.url)
    response = requests.post(
        f"{live_server.url}/o/introspect/", data={"token": token["access_token"]},
        headers={"Authorization": f"Bearer {token['access_token']}"}, timeout=10,
    )
    assert response.status_code == 403


def test_unknown_client_gets_no_scope(live_server, settings):
    Application.objects.create(
        name="stranger", client_id="stranger", client_secret="stranger-secret-123",
        client_type=Application.CLIENT_CONFIDENTIAL, authorization_grant_type=Application.GRANT_CLIENT_CREDENTIALS,
    )
    response = requests.post(
        f"{live_server.url}/o/token/", data={"grant_type": "client_credentials", "scope": "introspection"},
        auth=("stranger", "stranger-secret-123"), timeout=10,
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_scope"


def test_token_endpoint_is_rate_limited_per_ip(live_server, settings):
    settings.TOKEN_RATE_PER_IP = "3/min"
    statuses = [
        requests.post(f"{live_server.url}/o/token/", data={"grant_type": "client_credentials"}, timeout=10)
        for _ in range(5)
    ]
    assert [r.status_code for r in statuses[:3]] == [401, 401, 401]
    assert statuses[3].status_code == 429
    assert int(statuses[3].headers["Retry-After"]) >= 1
    assert statuses[3].headers["Content-Type"] == "application/problem+json"


def test_login_is_rate_limited_and_locked_out(live_server, resident_user, settings):
    settings.LOGIN_RATE_PER_IP = "100/min"
    base = live_server.url
    browser = requests.Session()
    page = browser.get(f"{base}/accounts/login/")
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    statuses = []
    for _ in range(settings.AXES_FAILURE_LIMIT + 1):
        statuses.append(browser.post(
            f"{base}/accounts/login/", data={"username": "resident1", "password": "wrong", "csrfmiddlewaretoken": csrf},
            headers={"Referer": f"{base}/accounts/login/"}, allow_redirects=False,
        ).status_code)
    assert statuses[0] == 200  # the form again, with an error
    assert statuses[-1] == 429 or statuses[-1] == 403  # axes: locked out
    # even the right password is refused while locked out
    locked = browser.post(
        f"{base}/accounts/login/", data={"username": "resident1", "password": PASSWORD, "csrfmiddlewaretoken": csrf},
        headers={"Referer": f"{base}/accounts/login/"}, allow_redirects=False,
    )
    assert locked.status_code != 302


def test_scope_permission_names_the_missing_scope():
    class FakeToken:
        def allow_scopes(self, scopes):
            return set(scopes) <= {"devices:read"}

    permission = scope_required("devices:read", "doors:open")()
    request = type("R", (), {"auth": FakeToken()})()
    with pytest.raises(MissingScope) as raised:
        permission.has_permission(request, None)
    assert raised.value.problem_extra == {"required_scope": "doors:open"}
