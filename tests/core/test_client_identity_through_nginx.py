"""Who the client is, as the service sees it behind the real nginx: /metrics, axes' lockout, `iss`.

Behind nginx the TCP peer of the service is always the proxy; each of these used to look at it.
"""

import re
from urllib.parse import parse_qs, urlparse

import pytest
import requests
from django.contrib.auth import get_user_model
from oauth2_provider.models import get_application_model
from requests.adapters import HTTPAdapter

from tests.core.test_oauth_flow import PASSWORD, REDIRECT_URI, authorize, browser_login, pkce_pair

pytestmark = pytest.mark.django_db(transaction=True)


class FromAddress(HTTPAdapter):
    """Connects from a chosen loopback address (127.0.0.2, 127.0.0.3, ...): distinct clients to nginx."""

    def __init__(self, source: str, **kwargs):
        self.source = source
        super().__init__(**kwargs)

    def init_poolmanager(self, *args, **kwargs):
        kwargs["source_address"] = (self.source, 0)
        super().init_poolmanager(*args, **kwargs)


def client_from(source: str, ca) -> requests.Session:
    session = requests.Session()
    session.mount("https://", FromAddress(source))
    session.verify = str(ca)
    session.trust_env = False  # REQUESTS_CA_BUNDLE would override the dev CA
    return session


def public(proxy, path=""):
    return f"https://localhost:{proxy.public_port}{path}"


def test_nginx_serves_no_metrics_on_either_listener(proxy, dev_pki):
    ca = str(dev_pki["ca.pem"])
    assert requests.get(public(proxy, "/metrics"), verify=ca, timeout=10).status_code == 404
    partner = requests.get(
        f"https://localhost:{proxy.partner_port}/metrics", verify=ca, timeout=10,
        cert=(str(dev_pki["partner-client.pem"]), str(dev_pki["partner-client.key"])),
    )
    assert partner.status_code == 404
    assert b"django_http" not in partner.content


def test_metrics_look_at_the_client_behind_the_proxy_not_at_the_proxy(client, settings):
    settings.TRUSTED_PROXY_CIDRS = ["127.0.0.1/32"]
    settings.PROXY_AUTH_SECRET = "metrics-proxy-secret-0123456789abcdef"
    behind = client.get("/metrics", REMOTE_ADDR="127.0.0.1", HTTP_X_PROXY_AUTH=settings.PROXY_AUTH_SECRET,
                        HTTP_X_FORWARDED_FOR="203.0.113.9")
    assert behind.status_code == 403
    assert b"django_http" not in behind.content
    local = client.get("/metrics", REMOTE_ADDR="127.0.0.1", HTTP_X_PROXY_AUTH=settings.PROXY_AUTH_SECRET,
                       HTTP_X_FORWARDED_FOR="127.0.0.1")
    assert local.status_code == 200


def resident_login(session: requests.Session, base: str, username: str, password: str) -> requests.Response:
    page = session.get(f"{base}/accounts/login/", timeout=10)
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    return session.post(
        f"{base}/accounts/login/", timeout=10, allow_redirects=False,
        data={"username": username, "password": password, "csrfmiddlewaretoken": csrf, "next": "/healthz"},
        headers={"Referer": f"{base}/accounts/login/"},
    )


def test_a_lockout_from_one_client_address_does_not_lock_out_another(proxy, dev_pki, settings):
    """Five bad passwords from 127.0.0.2 lock that address out of the account; the resident at
    127.0.0.3 still signs in. Before, axes saw nginx's 127.0.0.1 for both."""
    settings.AXES_FAILURE_LIMIT = 5
    get_user_model().objects.create_user("resident-ax", password=PASSWORD)
    base = public(proxy)
    attacker = client_from("127.0.0.2", dev_pki["ca.pem"])
    statuses = [resident_login(attacker, base, "resident-ax", "wrong password!").status_code for _ in range(5)]
    assert statuses[-1] == 429, statuses
    assert resident_login(attacker, base, "resident-ax", PASSWORD).status_code == 429  # locked: even the right one

    resident = client_from("127.0.0.3", dev_pki["ca.pem"])
    signed_in = resident_login(resident, base, "resident-ax", PASSWORD)
    assert signed_in.status_code == 302, signed_in.text[:300]

    from axes.models import AccessAttempt

    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {"127.0.0.2"}


@pytest.fixture
def mobile_app():
    Application = get_application_model()
    return Application.objects.create(
        name="Mobile app", client_id="mobile-app", client_type=Application.CLIENT_PUBLIC,
        authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE, redirect_uris=REDIRECT_URI,
        skip_authorization=False, algorithm="",
    )


@pytest.mark.parametrize("configured", [None, "https://smarthome.example.ru"])
def test_the_authorisation_response_names_the_public_https_issuer(proxy, dev_pki, mobile_app, settings,
                                                                  monkeypatch, configured):
    """RFC 9207: `iss` is the origin the app talked to through nginx (or OAUTH_ISSUER_URL verbatim),
    never the service's own http://localhost."""
    settings.OAUTH2_PROVIDER = {**settings.OAUTH2_PROVIDER, "OIDC_ISS_ENDPOINT": configured or ""}
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(dev_pki["ca.pem"]))
    get_user_model().objects.create_user("resident1", password=PASSWORD)
    base = public(proxy)
    browser = browser_login(base, "resident1", PASSWORD)
    _, challenge = pkce_pair()
    redirect = authorize(base, browser, scope="devices:read", challenge=challenge)
    query = parse_qs(urlparse(redirect.headers["Location"]).query)
    assert query["code"]
    assert query["iss"] == [configured or base]
