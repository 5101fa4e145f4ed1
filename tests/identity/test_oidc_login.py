"""Residents sign in through a real OpenID Connect provider (tests/oidc_provider, its own process,
HTTPS): our /o/authorize/ -> the provider's login -> our callback -> our consent screen -> our
token -> the resident API. Every bad ID token and every unlinked identity is refused, with an
audit event and no session, no token, no new resident.
"""

import pytest
import requests
from oauth2_provider.models import get_access_token_model

from access.models import Resident
from audit.actions import Action, Outcome
from audit.models import AuditEvent
from identity.models import ProviderLink
from identity.services.links import provider_link_create
from tests.identity.helpers import confirm_consent, exchange_code, provider_sign_in, start_authorize

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

PASSWORD = "provider password 2026"


def browser(provider) -> requests.Session:
    session = requests.Session()
    session.trust_env = False
    session.verify = str(provider.ca_file)
    return session


def sign_in_through_provider(live_server, provider, username, *, scope="devices:read"):
    session = browser(provider)
    verifier, login_page = start_authorize(live_server.url, session, scope=scope)
    return session, verifier, provider_sign_in(session, login_page, username, PASSWORD)


def test_full_login_through_the_provider_gives_a_working_api_token(live_server, oidc_provider, provider_settings,
                                                                      make_resident, mobile_app):
    resident = make_resident()
    sub = oidc_provider.add_user("ivanov", PASSWORD, acr="gold", amr=["pwd", "otp"])
    provider_link_create(resident=resident, subject=sub)

    session, verifier, consent = sign_in_through_provider(live_server, oidc_provider, "ivanov")
    assert consent.status_code == 200, consent.text[:500]
    assert consent.url.startswith(f"{live_server.url}/o/authorize/")
    assert "Видеть ваши двери" in consent.text
    query = confirm_consent(live_server.url, session, consent)
    assert query["state"] == "app-state"
    assert query["iss"]  # our own authorisation server's iss (RFC 9207), unchanged

    token = exchange_code(live_server.url, query["code"], verifier)
    assert token.status_code == 200, token.text
    body = token.json()
    assert body["scope"] == "devices:read"
    me = requests.get(f"{live_server.url}/api/v1/me", headers={"Authorization": f"Bearer {body['access_token']}"},
                      timeout=30)
    assert me.status_code == 200, me.text

    login = AuditEvent.objects.get(action=Action.AUTH_LOGIN, outcome=Outcome.SUCCESS)
    assert login.reason == "oidc"
    assert login.object_ref == "acr:gold:amr:pwd.otp"
    assert login.source_ip == "127.0.0.1"
    assert login.company_id == resident.company_id
    assert AuditEvent.objects.filter(action=Action.AUTH_TOKEN_ISSUE, reason="authorization_code").count() == 1
    assert ProviderLink.objects.get().last_login_at is not None


@pytest.mark.parametrize(("fault", "cause"), [
    ("wrong_nonce", "id_token.invalid_claim"),
    ("wrong_aud", "id_token.invalid_claim"),
    ("expired", "id_token.expired_token"),
    ("unknown_key", "id_token"),
])
def test_bad_id_tokens_are_refused(live_server, oidc_provider, provider_settings, make_resident, mobile_app,
                                   fault, cause):
    resident = make_resident()
    provider_link_create(resident=resident, subject=oidc_provider.add_user("ivanov", PASSWORD))
    oidc_provider.fault(fault)

    session, _verifier, page = sign_in_through_provider(live_server, oidc_provider, "ivanov")

    assert page.status_code == 403
    assert page.url.startswith(f"{live_server.url}/accounts/oidc/callback/")
    assert "Вход отклонён" in page.text
    assert "Sign-in refused" in page.text
    refused = AuditEvent.objects.get(action=Action.AUTH_LOGIN)
    assert refused.outcome == Outcome.DENIED
    assert refused.reason.startswith(f"oidc.{cause}"), refused.reason
    # nothing was signed in: the authorisation request goes back to the login
    again = session.get(f"{live_server.url}/o/authorize/?client_id=mobile-app", allow_redirects=False, timeout=30)
    assert again.status_code == 302
    assert "/accounts/login/" in again.headers["Location"]
    assert not get_access_token_model().objects.exists()


def test_unlinked_identity_is_refused_and_no_resident_is_created(live_server, oidc_provider, provider_settings,
                                                                 make_resident, mobile_app):
    make_resident()
    oidc_provider.add_user("stranger", PASSWORD, phone_number="+79160000001", phone_number_verified=True)

    _session, _verifier, page = sign_in_through_provider(live_server, oidc_provider, "stranger")

    assert page.status_code == 403
    assert "not linked" in page.text
    assert "не связана" in page.text
    assert Resident.objects.count() == 1
    assert not ProviderLink.objects.exists()
    event = AuditEvent.objects.get(action=Action.AUTH_LOGIN)
    assert (event.outcome, event.reason) == (Outcome.DENIED, "oidc.unlinked")


def test_a_verified_phone_claim_links_the_first_login(live_server, oidc_provider, provider_settings, make_resident,
                                                       mobile_app):
    provider_settings.IDENTITY_OIDC_LINK_CLAIM = "phone_number"
    resident = make_resident(phone="8 (916) 000-00-01")
    sub = oidc_provider.add_user("ivanov", PASSWORD, phone_number="+79160000001", phone_number_verified=True)

    _session, _verifier, consent = sign_in_through_provider(live_server, oidc_provider, "ivanov")

    assert consent.status_code == 200, consent.text[:300]
    link = ProviderLink.objects.get()
    assert (link.resident_id, link.subject, link.origin) == (resident.pk, sub, ProviderLink.Origin.CLAIM)
    assert AuditEvent.objects.filter(action=Action.IDENTITY_LINK_CREATE, reason="claim").count() == 1


def test_an_unverified_phone_claim_links_nothing(live_server, oidc_provider, provider_settings, make_resident,
                                                  mobile_app):
    provider_settings.IDENTITY_OIDC_LINK_CLAIM = "phone_number"
    make_resident(phone="+79160000001")
    oidc_provider.add_user("ivanov", PASSWORD, phone_number="+79160000001", phone_number_verified=False)

    _session, _verifier, page = sign_in_through_provider(live_server, oidc_provider, "ivanov")

    assert page.status_code == 403
    assert not ProviderLink.objects.exists()
    assert AuditEvent.objects.get(action=Action.AUTH_LOGIN).reason == "oidc.claim_unverified"


def test_door_scopes_need_the_configured_acr(live_server, oidc_provider, provider_settings, make_resident,
                                             mobile_app):
    provider_settings.IDENTITY_OIDC_DOOR_ACR = ["gold"]
    resident = make_resident()
    provider_link_create(resident=resident, subject=oidc_provider.add_user("ivanov", PASSWORD, acr="silver"))

    _session, _verifier, page = sign_in_through_provider(live_server, oidc_provider, "ivanov",
                                                         scope="devices:read doors:open")

    # one step-up round trip to the provider (acr_values=gold), which still vouches for silver: refused
    assert page.status_code == 403
    assert "second factor" in page.text
    refusals = AuditEvent.objects.filter(action=Action.AUTH_LOGIN, outcome=Outcome.DENIED)
    assert list(refusals.values_list("reason", flat=True)) == ["oidc.acr_insufficient"]
    assert AuditEvent.objects.filter(action=Action.AUTH_LOGIN, outcome=Outcome.SUCCESS).count() == 2
    assert not get_access_token_model().objects.exists()


def test_door_scopes_with_the_configured_acr_pass(live_server, oidc_provider, provider_settings, make_resident,
                                                  mobile_app):
    provider_settings.IDENTITY_OIDC_DOOR_ACR = ["gold"]
    resident = make_resident()
    provider_link_create(resident=resident, subject=oidc_provider.add_user("ivanov", PASSWORD, acr="gold"))

    session, verifier, consent = sign_in_through_provider(live_server, oidc_provider, "ivanov",
                                                          scope="devices:read doors:open")

    assert consent.status_code == 200, consent.text[:300]
    query = confirm_consent(live_server.url, session, consent)
    assert exchange_code(live_server.url, query["code"], verifier).json()["scope"] == "devices:read doors:open"


def test_backchannel_logout_revokes_our_tokens(live_server, oidc_provider, provider_settings, make_resident,
                                               mobile_app):
    resident = make_resident()
    sub = oidc_provider.add_user("ivanov", PASSWORD)
    provider_link_create(resident=resident, subject=sub)
    session, verifier, consent = sign_in_through_provider(live_server, oidc_provider, "ivanov")
    tokens = exchange_code(live_server.url, confirm_consent(live_server.url, session, consent)["code"], verifier).json()
    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert requests.get(f"{live_server.url}/api/v1/me", headers=bearer, timeout=30).status_code == 200

    callback = f"{live_server.url}/accounts/oidc/backchannel-logout/"
    assert oidc_provider.backchannel_logout(callback, sub=sub, mode="unknown_key")["status"] == 400
    assert oidc_provider.backchannel_logout(callback, sub=sub, mode="wrong_aud")["status"] == 400
    assert oidc_provider.backchannel_logout(callback, sub=sub, mode="no_event")["status"] == 400
    assert oidc_provider.backchannel_logout(callback, sub=sub, mode="with_nonce")["status"] == 400
    assert requests.get(f"{live_server.url}/api/v1/me", headers=bearer, timeout=30).status_code == 200

    sent = oidc_provider.backchannel_logout(callback, sub=sub)
    assert sent["status"] == 200
    assert requests.get(f"{live_server.url}/api/v1/me", headers=bearer, timeout=30).status_code == 401
    refreshed = requests.post(f"{live_server.url}/o/token/", data={
        "grant_type": "refresh_token", "refresh_token": tokens["refresh_token"], "client_id": "mobile-app",
    }, timeout=30)
    assert refreshed.status_code == 400
    # the browser session at our service is over too
    again = session.get(f"{live_server.url}/o/authorize/?client_id=mobile-app", allow_redirects=False, timeout=30)
    assert again.status_code == 302
    assert "/accounts/login/" in again.headers["Location"]
    # a replayed logout token is refused
    assert oidc_provider.backchannel_logout(callback, sub=sub, jti=sent["jti"])["status"] == 400

    revoked = AuditEvent.objects.get(action=Action.AUTH_TOKEN_REVOKE, outcome=Outcome.SUCCESS)
    assert revoked.reason.startswith("backchannel_logout.")
    assert AuditEvent.objects.filter(action=Action.AUTH_TOKEN_REVOKE, outcome=Outcome.DENIED).count() == 5
    assert AuditEvent.objects.filter(action=Action.AUTH_TOKEN_REFUSED, reason="invalid_grant").count() == 1


def test_backchannel_logout_by_sid_alone(live_server, oidc_provider, provider_settings, make_resident, mobile_app):
    resident = make_resident()
    sub = oidc_provider.add_user("ivanov", PASSWORD)
    provider_link_create(resident=resident, subject=sub)
    session, verifier, consent = sign_in_through_provider(live_server, oidc_provider, "ivanov")
    tokens = exchange_code(live_server.url, confirm_consent(live_server.url, session, consent)["code"], verifier).json()

    assert oidc_provider.backchannel_logout(f"{live_server.url}/accounts/oidc/backchannel-logout/",
                                            sid=f"sid-{sub}")["status"] == 200
    me = requests.get(f"{live_server.url}/api/v1/me", headers={"Authorization": f"Bearer {tokens['access_token']}"},
                      timeout=30)
    assert me.status_code == 401


def test_a_forged_state_is_refused(live_server, oidc_provider, provider_settings, mobile_app):
    session = browser(oidc_provider)
    page = session.get(f"{live_server.url}/accounts/oidc/callback/?code=x&state=forged", timeout=30)
    assert page.status_code == 400
    assert AuditEvent.objects.get(action=Action.AUTH_LOGIN).reason == "oidc.state"
