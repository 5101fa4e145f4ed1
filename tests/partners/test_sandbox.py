"""The sandbox partner over real HTTPS + mTLS on loopback: the partner contract and its faults."""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import os
import socket
import ssl
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from cryptography import x509
from joserfc import jwe, jwt
from joserfc.jwk import ECKey, RSAKey
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from partners.devcerts import x5t_s256
from partners.sandbox.__main__ import load_clients
from partners.sandbox.control import SandboxControlError
from partners.sandbox.oauth import AUDIENCE, ISSUER

pytestmark = pytest.mark.partner

GATE = "gate-1"


@pytest.fixture
def partner(clean_sandbox):
    """A freshly reset sandbox with one online device, GATE."""
    clean_sandbox.control.put_device(GATE)
    return clean_sandbox


@pytest.fixture
def api(partner) -> requests.Session:
    return partner.authorized_session()


def open_gate(partner, session, request_id="req-1", device=GATE, **kwargs) -> requests.Response:
    body = {"request_id": request_id, "subject": "subj-1"}
    return session.post(f"{partner.base_url}/v1/devices/{device}/open", json=body, timeout=5, **kwargs)


def future(days=30) -> str:
    return (datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=days)).isoformat()


def signed_token(partner, key=None, **overrides) -> str:
    """A token signed with `key` (default: the sandbox's own key), with some claims changed."""
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "sub": partner.client_id,
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + 60,
        "jti": "t-1",
        "cnf": {"x5t#S256": x5t_s256(partner.pki["smarthome-client.pem"].read_bytes())},
        **overrides,
    }
    key = key or ECKey.import_key(partner.pki["sandbox-jwt.key"].read_bytes())
    return jwt.encode({"alg": "ES256"}, claims, key)


def assert_invalid_token(response: requests.Response, description: str = "") -> None:
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_token"
    assert response.headers["WWW-Authenticate"].startswith('Bearer error="invalid_token"')
    assert description in response.json()["error_description"]


# --- OAuth2 client credentials and certificate-bound tokens ---------------------------------


def test_token_is_a_certificate_bound_jwt_that_opens_a_door(partner):
    session = partner.session()
    response = session.post(
        f"{partner.base_url}/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(partner.client_id, partner.client_secret),
        timeout=5,
    )
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 300
    key = ECKey.import_key(partner.pki["sandbox-jwt.key"].read_bytes())
    claims = jwt.decode(body["access_token"], key, algorithms=["ES256"]).claims
    assert claims["sub"] == "smarthome"
    assert claims["aud"] == "sandbox-partner"
    assert claims["exp"] - claims["iat"] in (300, 301)  # exp is rounded up, iat down
    assert claims["cnf"] == {"x5t#S256": x5t_s256(partner.pki["smarthome-client.pem"].read_bytes())}
    assert claims["jti"]

    session.headers["Authorization"] = f"Bearer {body['access_token']}"
    opened = open_gate(partner, session)
    assert opened.status_code == 200
    assert opened.json() == {"result": "opened", "request_id": "req-1"}
    assert partner.control.state()["tokens_issued"] == 1


def test_client_may_authenticate_with_form_fields(partner):
    response = partner.session().post(
        f"{partner.base_url}/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": "smarthome",
            "client_secret": "sandbox-secret",
        },
        timeout=5,
    )
    assert response.status_code == 200
    assert response.json()["access_token"]


@pytest.mark.parametrize(
    ("auth", "form", "status", "error", "basic_challenge"),
    [
        (("smarthome", "wrong"), {"grant_type": "client_credentials"}, 401, "invalid_client", True),
        (
            None,
            {"grant_type": "client_credentials", "client_id": "nobody", "client_secret": "x"},
            401,
            "invalid_client",
            False,
        ),
        (None, {"grant_type": "client_credentials"}, 401, "invalid_client", False),
        (("smarthome", "sandbox-secret"), {"grant_type": "password"}, 400, "unsupported_grant_type", False),
        (("smarthome", "sandbox-secret"), {}, 400, "invalid_request", False),
        (
            ("smarthome", "sandbox-secret"),
            {"grant_type": "client_credentials", "client_id": "smarthome"},
            400,
            "invalid_request",
            False,
        ),
    ],
    ids=[
        "wrong-secret",
        "unknown-client",
        "no-credentials",
        "password-grant",
        "no-grant",
        "two-auth-methods",
    ],
)
def test_token_endpoint_errors_follow_rfc_6749(partner, auth, form, status, error, basic_challenge):
    response = partner.session().post(f"{partner.base_url}/oauth/token", data=form, auth=auth, timeout=5)
    assert response.status_code == status
    assert response.json()["error"] == error
    assert ("WWW-Authenticate" in response.headers) == basic_challenge
    assert partner.control.state()["tokens_issued"] == 0


@pytest.mark.parametrize(
    ("make_header", "description"),
    [
        (lambda partner: None, "required"),
        (lambda partner: "Bearer not-a-jwt", "malformed"),
        (lambda partner: "Basic c21hcnRob21lOnNhbmRib3gtc2VjcmV0", "required"),
        (lambda partner: "Bearer " + signed_token(partner, exp=int(time.time()) - 5), "expired"),
        (lambda partner: "Bearer " + signed_token(partner, aud="someone-else"), "audience"),
        (lambda partner: "Bearer " + signed_token(partner, iss="https://evil.invalid"), "malformed"),
        (lambda partner: "Bearer " + signed_token(partner, cnf={"x5t#S256": "AAAA"}), "another client"),
        (lambda partner: "Bearer " + signed_token(partner, cnf="not-an-object"), "another client"),
        (
            lambda partner: "Bearer " + signed_token(partner, key=ECKey.generate_key("P-256")),
            "wrongly signed",
        ),
    ],
    ids=[
        "missing",
        "garbage",
        "basic",
        "expired",
        "wrong-aud",
        "wrong-iss",
        "wrong-cnf",
        "cnf-not-object",
        "foreign-key",
    ],
)
def test_v1_rejects_bad_bearer_tokens(partner, make_header, description):
    session = partner.session()
    header = make_header(partner)
    response = open_gate(partner, session, headers={"Authorization": header} if header else {})
    assert_invalid_token(response, description)
    assert partner.control.log()["entries"] == []


def test_token_from_our_own_key_with_valid_claims_is_accepted(partner):
    """The counterpart of the rejections above: a correctly made token works."""
    response = open_gate(
        partner, partner.session(), headers={"Authorization": "Bearer " + signed_token(partner)}
    )
    assert response.status_code == 200


def test_token_presented_over_another_client_certificate_is_refused(partner):
    token = partner.fetch_token(partner.session("smarthome-client"))
    other = partner.session("partner-client")  # signed by the same dev CA: TLS succeeds
    response = open_gate(partner, other, headers={"Authorization": f"Bearer {token}"})
    assert_invalid_token(response, "bound to another client certificate")


def test_expire_tokens_early_fault_rejects_a_fresh_token(api, partner):
    partner.control.set_faults(expire_tokens_early=True)
    assert_invalid_token(open_gate(partner, api), "expired")
    partner.control.clear_faults()
    assert open_gate(partner, api).status_code == 200


def test_token_expires_after_token_ttl_and_clients_file_replaces_default_client(sandbox_factory):
    with sandbox_factory(clients={"acme": "acme-secret"}, token_ttl_s=1) as short:
        short.control.put_device(GATE)
        response = short.session().post(
            f"{short.base_url}/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=("smarthome", "sandbox-secret"),
            timeout=5,
        )
        assert response.json()["error"] == "invalid_client"

        session = short.authorized_session()
        assert open_gate(short, session).status_code == 200
        time.sleep(2.1)
        assert_invalid_token(open_gate(short, session, request_id="req-2"), "expired")


def test_clients_come_from_the_file_else_the_environment_else_the_default(tmp_path):
    clients_file = tmp_path / "clients.json"
    clients_file.write_text('{"from-file": "s1"}')
    assert load_clients(clients_file, '{"from-env": "s2"}') == {"from-file": "s1"}
    assert load_clients(None, '{"from-env": "s2"}') == {"from-env": "s2"}
    assert load_clients(None, None) == {"smarthome": "sandbox-secret"}
    for bad in ("[1]", "{}", '{"a": 1}', "not json"):
        with pytest.raises(ValueError, match="SANDBOX_CLIENTS"):
            load_clients(None, bad)


# --- TLS ------------------------------------------------------------------------------------


def sandbox_log_count(partner, line_end: str) -> int:
    return sum(line.endswith(line_end) for line in partner.log_path.read_text().splitlines())


def assert_sandbox_logs_once_more(partner, line_end: str, before: int, timeout_s: float = 3.0) -> None:
    """The sandbox's stderr gains a line ending with `line_end` (written just after it closed)."""
    deadline = time.monotonic() + timeout_s
    while sandbox_log_count(partner, line_end) == before:
        assert time.monotonic() < deadline, f"sandbox never logged ...{line_end}"
        time.sleep(0.02)


# With TLS 1.3 the client may see the server's alert or just the closed connection (EOF),
# depending on timing; either way it is an SSLError, and the server says why it refused.


def test_client_certificate_from_another_ca_is_refused_at_the_handshake(partner):
    before = sandbox_log_count(partner, "failed: CERTIFICATE_VERIFY_FAILED")
    with pytest.raises(requests.exceptions.SSLError):
        partner.session("rogue-client").post(f"{partner.base_url}/oauth/token", timeout=5)
    assert_sandbox_logs_once_more(partner, "failed: CERTIFICATE_VERIFY_FAILED", before)
    assert partner.control.state()["tokens_issued"] == 0


def test_connection_without_client_certificate_is_refused(partner):
    session = partner.session()
    session.cert = None
    before = sandbox_log_count(partner, "failed: PEER_DID_NOT_RETURN_A_CERTIFICATE")
    with pytest.raises(requests.exceptions.SSLError):
        session.post(f"{partner.base_url}/oauth/token", timeout=5)
    assert_sandbox_logs_once_more(partner, "failed: PEER_DID_NOT_RETURN_A_CERTIFICATE", before)


def _handshake(partner, version: ssl.TLSVersion) -> str:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(partner.pki["ca.pem"])
    context.load_cert_chain(partner.pki["smarthome-client.pem"], partner.pki["smarthome-client.key"])
    context.minimum_version = context.maximum_version = version
    # Let our client offer old protocols at all, so that it is the server that refuses them.
    context.set_ciphers("DEFAULT:@SECLEVEL=0")
    host, port = partner.base_url.removeprefix("https://").rsplit(":", 1)
    with (
        socket.create_connection((host, int(port)), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        return tls.version()


def test_tls_1_2_is_accepted_and_tls_1_1_refused_by_the_server(partner):
    assert _handshake(partner, ssl.TLSVersion.TLSv1_2) == "TLSv1.2"
    with (
        pytest.warns(DeprecationWarning, match="TLSv1_1"),
        pytest.raises(ssl.SSLError, match="ALERT_PROTOCOL_VERSION"),
    ):
        _handshake(partner, ssl.TLSVersion.TLSv1_1)


def test_server_certificate_is_valid_for_localhost_and_loopback_ip(partner):
    port = partner.base_url.rsplit(":", 1)[1]
    session = partner.session()
    for host in ("localhost", "127.0.0.1"):
        # Any HTTP answer means the certificate verified for that name (else: SSLError).
        assert session.get(f"https://{host}:{port}/v1/audit", timeout=5).status_code == 401


# --- /v1 operations -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("online", "lockdown", "result"),
    [(True, False, "opened"), (True, True, "denied"), (False, False, "offline")],
)
def test_open_reports_what_the_device_did(api, partner, online, lockdown, result):
    partner.control.put_device(GATE, online=online, lockdown=lockdown)
    response = open_gate(partner, api, request_id="r-open")
    assert response.status_code == 200
    assert response.json() == {"result": result, "request_id": "r-open"}


def test_open_unknown_device_is_404_and_missing_subject_400(api, partner):
    assert open_gate(partner, api, device="no-such-gate").json()["error"] == "unknown_device"
    response = api.post(f"{partner.base_url}/v1/devices/{GATE}/open", json={"request_id": "r"}, timeout=5)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


def test_webrtc_session_returns_sdp_answer_and_ice_servers(api, partner):
    offer = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
    response = api.post(
        f"{partner.base_url}/v1/devices/{GATE}/webrtc-sessions",
        json={"request_id": "r-video", "subject": "subj-1", "sdp_offer": offer},
        timeout=5,
    )
    assert response.status_code == 201
    body = response.json()
    uuid.UUID(body["session_id"])
    assert body["sdp"].startswith("v=0\r\n")
    assert "m=video " in body["sdp"]
    assert "a=fingerprint:sha-256 " in body["sdp"]
    assert any(url.startswith("turn:turn.sandbox.invalid") for s in body["ice_servers"] for url in s["urls"])
    expires_at = datetime.datetime.fromisoformat(body["expires_at"])
    assert expires_at > datetime.datetime.now(datetime.UTC)
    assert partner.control.state()["video_sessions"][0]["session_id"] == body["session_id"]


def test_webrtc_session_on_offline_device_is_409(api, partner):
    partner.control.put_device(GATE, online=False)
    response = api.post(
        f"{partner.base_url}/v1/devices/{GATE}/webrtc-sessions",
        json={"request_id": "r-video", "subject": "subj-1"},
        timeout=5,
    )
    assert response.status_code == 409
    assert response.json()["error"] == "device_offline"


def _encrypt_face(pki, image: bytes, kind: str) -> str:
    if kind == "ec":
        key = ECKey.import_key(pki["partner-jwe.pub.pem"].read_bytes())
        return jwe.encrypt_compact({"alg": "ECDH-ES+A256KW", "enc": "A256GCM"}, image, key)
    key = RSAKey.import_key(pki["partner-jwe-rsa.pub.pem"].read_bytes())
    registry = jwe.JWERegistry(algorithms=["RSA-OAEP-256", "A256GCM"])
    return jwe.encrypt_compact({"alg": "RSA-OAEP-256", "enc": "A256GCM"}, image, key, registry=registry)


def _put_face(partner, session, subject, compact, **overrides) -> requests.Response:
    body = {"jwe": compact, "consent_ref": "consent-7", "retention_until": future(), "request_id": "r-face"}
    return session.put(
        f"{partner.base_url}/v1/subjects/{subject}/face", json={**body, **overrides}, timeout=10
    )


@pytest.mark.parametrize("kind", ["ec", "rsa"])
def test_face_enrolment_keeps_only_hash_and_size_of_the_decrypted_image(api, partner, kind):
    image = os.urandom(48_000)
    response = _put_face(partner, api, "subj-9", _encrypt_face(partner.pki, image, kind))
    assert response.status_code == 202
    assert response.json()["image_sha256"] == hashlib.sha256(image).hexdigest()
    face = partner.control.state()["faces"]["subj-9"]
    assert face["image_sha256"] == hashlib.sha256(image).hexdigest()
    assert face["image_size"] == len(image)
    assert face["consent_ref"] == "consent-7"
    assert set(face) == {"image_sha256", "image_size", "consent_ref", "retention_until", "enrolled_at"}


@pytest.mark.parametrize(
    "make_jwe",
    [
        lambda pki: "garbage",
        lambda pki: "a.b.c.d.e",
        lambda pki: jwe.encrypt_compact(
            {"alg": "ECDH-ES+A256KW", "enc": "A256GCM"}, b"face", ECKey.generate_key("P-256")
        ),
        lambda pki: _encrypt_face(pki, b"face", "ec")[:-8] + "AAAAAAAA",
        lambda pki: jwe.encrypt_compact(
            {"alg": "ECDH-ES+A128KW", "enc": "A128GCM"},
            b"face",
            ECKey.import_key(pki["partner-jwe.pub.pem"].read_bytes()),
        ),
    ],
    ids=["garbage", "five-junk-segments", "foreign-key", "tampered-tag", "unsupported-alg"],
)
def test_face_that_cannot_be_decrypted_is_422_and_not_kept(api, partner, make_jwe):
    response = _put_face(partner, api, "subj-9", make_jwe(partner.pki))
    assert response.status_code == 422
    assert response.json()["error"] == "undecryptable"
    assert partner.control.state()["faces"] == {}
    [entry] = partner.control.log()["entries"]
    assert (entry["operation"], entry["result"], entry["http_status"]) == ("face.enrol", "undecryptable", 422)


def test_face_with_retention_in_the_past_is_400(api, partner):
    compact = _encrypt_face(partner.pki, b"face", "ec")
    response = _put_face(partner, api, "subj-9", compact, retention_until=future(days=-1))
    assert response.status_code == 400


def test_face_deletion_is_confirmed_and_idempotent(api, partner):
    assert _put_face(partner, api, "subj-9", _encrypt_face(partner.pki, b"face", "ec")).status_code == 202
    url = f"{partner.base_url}/v1/subjects/subj-9/face"
    first = api.delete(url, headers={"X-Request-Id": "r-del-1"}, timeout=5)
    again = api.delete(url, headers={"X-Request-Id": "r-del-2"}, timeout=5)
    for response in (first, again):
        assert response.status_code == 204
        assert response.content == b""
        uuid.UUID(response.headers["X-Deletion-Id"])
    state = partner.control.state()
    assert state["faces"] == {}
    assert [(d["deletion_id"], d["had_face"]) for d in state["deletions"]] == [
        (first.headers["X-Deletion-Id"], True),
        (again.headers["X-Deletion-Id"], False),
    ]
    deletions = [e for e in partner.control.log()["entries"] if e["operation"] == "face.delete"]
    assert [(e["request_id"], e["subject"], e["http_status"]) for e in deletions] == [
        ("r-del-1", "subj-9", 204),
        ("r-del-2", "subj-9", 204),
    ]


def test_allowlist_full_sync_and_incremental_changes_are_versioned(api, partner):
    url = f"{partner.base_url}/v1/sites/site-a/allowlist"
    entries = [
        {"type": "plate", "token": "p1", "device_refs": [GATE]},
        {"type": "face", "token": "f1", "device_refs": [GATE], "valid_until": future()},
    ]
    put = api.put(url, json={"version": 5, "entries": entries}, timeout=5)
    assert (put.status_code, put.json()) == (200, {"site_ref": "site-a", "version": 5, "entries": 2})
    assert api.put(url, json={"version": 4, "entries": []}, timeout=5).status_code == 409
    assert api.put(url, json={"version": 5, "entries": entries}, timeout=5).status_code == 200

    patch = {
        "version": 6,
        "upserts": [{"type": "plate", "token": "p2", "device_refs": [GATE, "gate-2"]}],
        "removals": [{"type": "face", "token": "f1"}],
    }
    response = api.patch(url, json=patch, timeout=5)
    assert (response.status_code, response.json()) == (
        200,
        {"site_ref": "site-a", "version": 6, "entries": 2},
    )
    stale = api.patch(url, json={**patch, "version": 6}, timeout=5)
    assert (stale.status_code, stale.json()["error"]) == (409, "version_conflict")

    allowlist = partner.control.state()["allowlists"]["site-a"]
    assert allowlist["version"] == 6
    assert sorted((e["type"], e["token"]) for e in allowlist["entries"]) == [("plate", "p1"), ("plate", "p2")]


@pytest.mark.parametrize(
    "body",
    [
        {"version": 1, "entries": [{"type": "iris", "token": "x", "device_refs": []}]},
        {"version": 1, "entries": [{"type": "plate", "token": "", "device_refs": []}]},
        {"version": 1, "entries": [{"type": "plate", "token": "x", "device_refs": "gate-1"}]},
        {"version": 1, "entries": [{"type": "plate", "token": "x", "device_refs": [], "valid_from": "soon"}]},
        {"version": "1", "entries": []},
        {"version": 1},
    ],
    ids=["bad-type", "empty-token", "refs-not-list", "bad-time", "version-string", "no-entries"],
)
def test_allowlist_with_malformed_body_is_400(api, partner, body):
    response = api.put(f"{partner.base_url}/v1/sites/site-a/allowlist", json=body, timeout=5)
    assert (response.status_code, response.json()["error"]) == (400, "invalid_request")


# --- idempotency and the partner's log ------------------------------------------------------


def test_idempotency_key_replays_the_first_reply_and_logs_once(api, partner):
    headers = {"Idempotency-Key": "key-1"}
    first = open_gate(partner, api, request_id="r-idem", headers=headers)
    partner.control.put_device(GATE, online=False)  # a fresh call would now say "offline"
    again = open_gate(partner, api, request_id="r-idem", headers=headers)
    assert first.json() == again.json() == {"result": "opened", "request_id": "r-idem"}
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers

    log = partner.control.log()
    assert [e["request_id"] for e in log["entries"]] == ["r-idem"]
    assert log["idempotency_keys"] == [
        {"client_id": "smarthome", "method": "POST", "path": f"/v1/devices/{GATE}/open", "key": "key-1"}
    ]

    reused = open_gate(partner, api, request_id="r-other", headers=headers)
    assert (reused.status_code, reused.json()["error"]) == (422, "idempotency_key_reused")


def test_idempotent_deletion_replay_returns_the_same_deletion_id(api, partner):
    url = f"{partner.base_url}/v1/subjects/subj-9/face"
    headers = {"Idempotency-Key": "del-1", "X-Request-Id": "r-del"}
    first = api.delete(url, headers=headers, timeout=5)
    again = api.delete(url, headers=headers, timeout=5)
    assert first.headers["X-Deletion-Id"] == again.headers["X-Deletion-Id"]
    assert again.status_code == 204
    assert len(partner.control.state()["deletions"]) == 1
    assert len(partner.control.log()["entries"]) == 1


def test_audit_lists_our_calls_since_a_time_in_order(api, partner):
    open_gate(partner, api, request_id="r-1")
    time.sleep(0.01)
    since = datetime.datetime.now(datetime.UTC)
    open_gate(partner, api, request_id="r-2")
    api.delete(f"{partner.base_url}/v1/subjects/subj-3/face", headers={"X-Request-Id": "r-3"}, timeout=5)
    open_gate(partner, api, request_id="r-4", device="missing")

    everything = api.get(f"{partner.base_url}/v1/audit", timeout=5).json()["entries"]
    assert [e["request_id"] for e in everything] == ["r-1", "r-2", "r-3", "r-4"]

    recent = api.get(f"{partner.base_url}/v1/audit", params={"since": since.isoformat()}, timeout=5)
    entries = recent.json()["entries"]
    assert [e["request_id"] for e in entries] == ["r-2", "r-3", "r-4"]
    assert entries[0] == {
        "request_id": "r-2",
        "operation": "device.open",
        "device_ref": GATE,
        "subject": "subj-1",
        "result": "opened",
        "http_status": 200,
        "at": entries[0]["at"],
    }
    assert (entries[1]["operation"], entries[1]["device_ref"], entries[1]["subject"]) == (
        "face.delete",
        None,
        "subj-3",
    )
    assert (entries[2]["result"], entries[2]["http_status"]) == ("unknown_device", 404)
    times = [datetime.datetime.fromisoformat(e["at"]) for e in everything]
    assert times == sorted(times)
    assert times[1] >= since


def test_audit_rejects_a_since_without_offset(api, partner):
    response = api.get(f"{partner.base_url}/v1/audit", params={"since": "2026-01-01T00:00:00"}, timeout=5)
    assert response.status_code == 400


# --- fault injection ------------------------------------------------------------------------


def test_latency_fault_delays_every_answer(api, partner):
    started = time.monotonic()
    open_gate(partner, api)
    baseline = time.monotonic() - started
    partner.control.set_faults(latency_ms=400)
    started = time.monotonic()
    assert open_gate(partner, api).status_code == 200
    assert time.monotonic() - started >= baseline + 0.35


@pytest.mark.parametrize("status", [500, 502, 503])
def test_error_rate_one_fails_every_call_with_the_status_and_nothing_is_logged(api, partner, status):
    partner.control.set_faults(error_rate=1, error_status=status)
    for _ in range(3):
        assert open_gate(partner, api).status_code == status
    assert partner.control.log()["entries"] == []


def test_fail_next_fails_exactly_n_calls(api, partner):
    partner.control.set_faults(fail_next=2)
    statuses = [open_gate(partner, api, request_id=f"r-{i}").status_code for i in range(3)]
    assert statuses == [503, 503, 200]
    assert [e["request_id"] for e in partner.control.log()["entries"]] == ["r-2"]
    assert partner.control.faults()["fail_next"] == 0


def test_rate_limit_answers_429_with_retry_after(api, partner):
    partner.control.set_faults(rate_limit=True, retry_after_s=7)
    response = open_gate(partner, api)
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "7"


def test_down_refuses_connections_until_up(api, partner):
    partner.control.down()
    with pytest.raises(requests.exceptions.ConnectionError) as refused:
        open_gate(partner, partner.session())
    assert "refused" in str(refused.value).lower()
    with pytest.raises(requests.exceptions.ConnectionError):
        open_gate(partner, api)  # the pooled connection was cut as well

    partner.control.up()
    assert open_gate(partner, api).status_code == 200
    assert partner.control.faults()["down"] is False


def test_hang_keeps_the_client_waiting_until_its_read_timeout(api, partner):
    partner.control.set_faults(hang=True)
    started = time.monotonic()
    with pytest.raises(requests.exceptions.ReadTimeout):
        api.post(
            f"{partner.base_url}/v1/devices/{GATE}/open",
            json={"request_id": "r-hung", "subject": "s"},
            timeout=(5, 0.5),
        )
    assert time.monotonic() - started >= 0.5
    partner.control.clear_faults()
    assert open_gate(partner, api).status_code == 200
    assert [e["request_id"] for e in partner.control.log()["entries"]] == ["req-1"]


def test_control_api_validates_faults_and_reset_clears_everything(api, partner):
    with pytest.raises(SandboxControlError) as bad:
        partner.control.set_faults(error_rate=2)
    assert bad.value.status == 400
    with pytest.raises(SandboxControlError):
        partner.control.set_faults(teleport=True)

    partner.control.set_faults(latency_ms=5, fail_next=1)
    assert open_gate(partner, api, headers={"Idempotency-Key": "k"}).status_code == 503
    open_gate(partner, api, headers={"Idempotency-Key": "k"})
    partner.control.reset()
    assert partner.control.faults()["latency_ms"] == 0
    assert partner.control.log() == {"entries": [], "idempotency_keys": []}
    state = partner.control.state()
    assert (state["devices"], state["tokens_issued"]) == ({}, 0)


def test_unknown_path_and_wrong_method(api, partner):
    assert api.get(f"{partner.base_url}/v1/nothing", timeout=5).status_code == 404
    response = api.get(f"{partner.base_url}/v1/devices/{GATE}/open", timeout=5)
    assert (response.status_code, response.headers["Allow"]) == (405, "POST")


def test_sandbox_log_carries_no_tokens_or_secrets(api, partner):
    token = api.headers["Authorization"].split()[1]
    open_gate(partner, api)
    log_text = partner.log_path.read_text()
    assert token not in log_text
    assert partner.client_secret not in log_text
    assert token not in json.dumps(partner.control.log())
    assert base64.b64encode(b"smarthome:sandbox-secret").decode() not in log_text


# --- the partner calling our service (arrivals, event webhooks) -----------------------------

WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"sandbox-webhook-secret-32-bytes!").decode()


class _OurService(BaseHTTPRequestHandler):
    """A stand-in for our partner API: token endpoint, access decisions, events (mTLS)."""

    protocol_version = "HTTP/1.1"

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        peer = x509.load_der_x509_certificate(self.connection.getpeercert(binary_form=True))
        self.server.received.append(
            {
                "path": self.path,
                "headers": dict(self.headers),
                "body": body,
                "peer_cn": peer.subject.rfc4514_string(),
            }
        )
        mode = self.server.mode
        if self.path == "/o/token/":
            return self._answer(200, {"access_token": "our-token", "token_type": "Bearer", "expires_in": 300})
        if mode == "slow":
            time.sleep(1.5)
        if mode == "error":
            return self._answer(503, {"error": "down"})
        if self.headers.get("Authorization") != "Bearer our-token":
            return self._answer(401, {"error": "invalid_token"})
        return self._answer(
            200, {"decision": "deny", "reason": "no_grant", "decision_id": "d-1", "ttl_s": 30}
        )

    def _answer(self, status, body):
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


class _OurServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # The sandbox hangs up on a slow answer by design; anything else is a test failure.
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


@pytest.fixture
def our_service(partner):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(partner.pki["smarthome-server.pem"], partner.pki["smarthome-server.key"])
    context.load_verify_locations(partner.pki["ca.pem"])
    context.verify_mode = ssl.CERT_REQUIRED
    server = _OurServer(("127.0.0.1", 0), _OurService)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    server.received, server.mode = [], "normal"
    server.url = f"https://127.0.0.1:{server.server_port}"
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    partner.control.configure_smarthome(
        server.url,
        token_url=f"{server.url}/o/token/",
        client_id="sandbox-partner",
        client_secret="our-secret",
        webhook_secret=WEBHOOK_SECRET,
        decision_timeout_s=0.5,
    )
    yield server
    server.shutdown()
    server.server_close()


def test_arrival_asks_our_service_over_mtls_with_a_client_credentials_token(partner, our_service):
    decision = partner.control.arrival(GATE, "plate", "plate-token-1", request_id="arr-1")
    assert decision == {
        "decision": "deny",
        "reason": "no_grant",
        "decision_id": "d-1",
        "ttl_s": 30,
        "source": "smarthome",
        "request_id": "arr-1",
    }
    token_call, decision_call = our_service.received
    assert token_call["path"] == "/o/token/"
    assert (
        token_call["headers"]["Authorization"]
        == "Basic " + base64.b64encode(b"sandbox-partner:our-secret").decode()
    )
    assert decision_call["path"] == "/partner/v1/access-decisions"
    assert decision_call["peer_cn"] == "CN=sandbox-partner,O=smarthome dev"
    sent = json.loads(decision_call["body"])
    assert sent["credential"] == {"type": "plate", "token": "plate-token-1"}
    assert (sent["device_ref"], sent["request_id"]) == (GATE, "arr-1")
    datetime.datetime.fromisoformat(sent["observed_at"])

    partner.control.arrival(GATE, "plate", "plate-token-1")
    assert [r["path"] for r in our_service.received].count("/o/token/") == 1  # the token is reused
    assert partner.control.state()["arrivals"][0]["source"] == "smarthome"


@pytest.mark.parametrize(
    ("mode", "reason"), [("error", "http_503"), ("slow", "timeout"), ("gone", "unreachable")]
)
def test_arrival_falls_back_to_the_local_allowlist_when_we_cannot_answer(
    api, partner, our_service, mode, reason
):
    entries = [{"type": "plate", "token": "known", "device_refs": [GATE]}]
    api.put(
        f"{partner.base_url}/v1/sites/site-a/allowlist", json={"version": 1, "entries": entries}, timeout=5
    )
    if mode == "gone":
        our_service.shutdown()
        our_service.server_close()
    our_service.mode = mode

    started = time.monotonic()
    allowed = partner.control.arrival(GATE, "plate", "known")
    assert time.monotonic() - started < 1.4  # decision_timeout_s bounds the wait
    assert (allowed["decision"], allowed["source"], allowed["fallback_reason"]) == (
        "allow",
        "local_allowlist",
        reason,
    )
    denied = partner.control.arrival("gate-elsewhere", "plate", "known")
    assert (denied["decision"], denied["source"]) == ("deny", "local_allowlist")


def test_emitted_event_carries_a_valid_standard_webhooks_signature(partner, our_service):
    sent = partner.control.emit_event("door.opened", {"device_ref": GATE})
    assert sent["http_status"] == 200
    event = our_service.received[-1]
    assert event["path"] == "/partner/v1/events"
    payload = Webhook(WEBHOOK_SECRET).verify(event["body"], event["headers"])
    assert payload["type"] == "door.opened"
    assert payload["data"] == {"device_ref": GATE}
    assert event["headers"]["webhook-id"] == sent["webhook_id"]

    replay = partner.control.emit_event("door.opened", {}, webhook_id=sent["webhook_id"], timestamp=1_000_000)
    assert replay["webhook_id"] == sent["webhook_id"]
    stale = our_service.received[-1]
    with pytest.raises(WebhookVerificationError, match="too old"):
        Webhook(WEBHOOK_SECRET).verify(stale["body"], stale["headers"])


def test_link_needs_configuring_and_hides_its_secrets(partner, our_service):
    described = partner.control.smarthome()
    assert described["has_client_secret"] is True
    assert "our-secret" not in json.dumps(described)
    partner.control.reset()
    with pytest.raises(SandboxControlError) as unconfigured:
        partner.control.arrival(GATE, "plate", "x")
    assert unconfigured.value.status == 409
