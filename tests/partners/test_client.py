"""The outbound partner client against the real sandbox partner over HTTPS + mTLS on loopback.

Real Redis holds the shared token and breaker state; real PostgreSQL the audit events. The
sandbox's control API injects the faults; its state and call log show what reached it.
"""

from __future__ import annotations

import datetime
import json
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core.cache import cache
from django.db import connection as db_connection
from prometheus_client import REGISTRY

from audit.actions import Action, Outcome
from audit.models import AuditEvent
from core.observability.scrape import scrape_registry
from partners.client import (
    CircuitOpen,
    ClientPolicy,
    PartnerAuthError,
    PartnerConnection,
    PartnerConnectionError,
    PartnerRejected,
    PartnerServerError,
    PartnerTimeout,
    PartnerTLSError,
    PartnerUnavailable,
    PartnerUnavailableProblem,
    RateLimited,
    delete_face,
    fetch_audit_log,
    open_device,
    put_allowlist,
    tokens,
)
from partners.client.breaker import PartnerBreaker, _storage, breaker_for
from partners.client.connection import session_for
from partners.models import Partner
from partners.signals import partner_breaker_closed

pytestmark = [pytest.mark.partner, pytest.mark.redis, pytest.mark.postgres]

GATE = "gate-1"
PARTNER_ID = 7001


@pytest.fixture
def partner(clean_sandbox):
    clean_sandbox.control.put_device(GATE)
    return clean_sandbox


def make_conn(sandbox, *, ca: str = "ca.pem", cert: str = "smarthome-client", partner_id=PARTNER_ID,
              base_url=None, **policy) -> PartnerConnection:
    defaults = {"backoff_base_s": 0.05, "backoff_max_s": 0.2, "breaker_fail_max": 50, "breaker_reset_s": 30}
    return PartnerConnection(
        partner_id=partner_id,
        slug="sandbox",
        base_url=base_url or sandbox.base_url,
        client_id=sandbox.client_id,
        client_secret=sandbox.client_secret,
        ca_pem=sandbox.pki[ca],
        client_cert_path=str(sandbox.pki[f"{cert}.pem"]),
        client_key_path=str(sandbox.pki[f"{cert}.key"]),
        policy=ClientPolicy.from_settings(**{**defaults, **policy}),
    )


@pytest.fixture
def conn(partner):
    return make_conn(partner)


def log_entries(sandbox) -> list[dict]:
    return sandbox.control.log()["entries"]


def tokens_issued(sandbox) -> int:
    return sandbox.control.state()["tokens_issued"]


def counter(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def scraped(name: str, **labels) -> float | None:
    """What /metrics would say now (gauges of shared state are computed at scrape time)."""
    return scrape_registry().get_sample_value(name, labels)


# --- TLS: pinned CA, our client certificate, TLS 1.2 minimum ---------------------------------


@pytest.mark.django_db
def test_session_trusts_only_the_partner_ca_and_requires_tls12(conn):
    session = session_for(conn)
    context = session.get_adapter(conn.base_url).ssl_context
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname
    assert [dict(c["subject"][0])["commonName"] for c in context.get_ca_certs()] == ["smarthome dev CA"]
    assert session.trust_env is False
    open_device(conn, device_ref=GATE, subject="subj-1", request_id="req-tls-1")
    # after a real request the pool still has no CA bundle of its own (requests would add certifi)
    pool = session.get_adapter(conn.base_url).poolmanager.connection_from_url(conn.base_url)
    assert pool.ca_certs is None
    assert pool.ca_cert_dir is None
    assert [dict(c["subject"][0])["commonName"] for c in context.get_ca_certs()] == ["smarthome dev CA"]


@pytest.mark.django_db
def test_wrong_client_certificate_is_refused_by_the_partner(partner):
    rogue = make_conn(partner, cert="rogue-client", retries=0)
    with pytest.raises(PartnerTLSError) as raised:  # the partner's "unknown ca" alert
        open_device(rogue, device_ref=GATE, subject="subj-1", request_id="req-rogue-1")
    assert isinstance(raised.value, PartnerUnavailable)
    assert tokens_issued(partner) == 0
    assert log_entries(partner) == []
    event = AuditEvent.objects.get(action=Action.PARTNER_TOKEN)
    assert (event.outcome, event.reason) == (Outcome.UNAVAILABLE, "tls")


@pytest.mark.django_db
def test_server_certificate_from_another_ca_is_refused(partner):
    # Our client pinned to another CA: the real sandbox's certificate (dev CA) is not trusted.
    pinned_elsewhere = make_conn(partner, ca="rogue-ca.pem", retries=0)
    with pytest.raises(PartnerTLSError):
        delete_face(pinned_elsewhere, subject="sub_x", idempotency_key="k-rogue-ca")
    assert tokens_issued(partner) == 0


@pytest.fixture
def rogue_server(dev_pki):
    """An HTTPS server with a certificate from the rogue CA (a partner impostor)."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(dev_pki["rogue-server.pem"], dev_pki["rogue-server.key"])
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


@pytest.mark.django_db
def test_impostor_with_a_certificate_from_another_ca_is_refused(partner, rogue_server):
    impostor = make_conn(partner, base_url=rogue_server, retries=0, partner_id=PARTNER_ID + 1)
    with pytest.raises(PartnerTLSError):
        open_device(impostor, device_ref=GATE, subject="subj-1", request_id="req-impostor")


# --- tokens -----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_one_token_serves_many_calls(conn, partner):
    for n in range(5):
        assert open_device(conn, device_ref=GATE, subject="subj-1", request_id=f"req-reuse-{n}").opened
    assert tokens_issued(partner) == 1
    assert len(log_entries(partner)) == 5
    # the token is in the shared cache, not only in this process
    assert tokens.cached_token(conn)["token"]
    assert AuditEvent.objects.filter(action=Action.PARTNER_TOKEN).count() == 1


@pytest.mark.django_db
def test_token_is_refreshed_shortly_before_expiry(partner):
    # The sandbox's tokens live 300 s; with a 299 s margin the token is "nearly expired" after 1 s.
    conn = make_conn(partner, token_refresh_margin_s=299)
    open_device(conn, device_ref=GATE, subject="subj-1", request_id="req-refresh-1")
    open_device(conn, device_ref=GATE, subject="subj-1", request_id="req-refresh-2")
    assert tokens_issued(partner) == 1
    time.sleep(1.1)
    open_device(conn, device_ref=GATE, subject="subj-1", request_id="req-refresh-3")
    assert tokens_issued(partner) == 2
    assert len(log_entries(partner)) == 3


@pytest.mark.django_db(transaction=True)
def test_concurrent_refreshes_collapse_into_one(partner):
    conn = make_conn(partner)
    partner.control.set_faults(latency_ms=300)  # every request, the token endpoint too, is slow
    errors: list[BaseException] = []

    def call(n):
        try:
            open_device(conn, device_ref=GATE, subject="subj-1", request_id=f"req-collapse-{n}")
        except BaseException as exc:
            errors.append(exc)
        finally:
            db_connection.close()

    threads = [threading.Thread(target=call, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert tokens_issued(partner) == 1
    assert len(log_entries(partner)) == 6


@pytest.mark.django_db
def test_401_refreshes_the_token_once_and_repeats_the_call(conn, partner):
    # A token the partner does not accept (foreign/garbled) sits in the shared cache.
    tokens.store_token(conn, "not-a-token-the-partner-issued", 300)
    deleted = delete_face(conn, subject="sub_401", idempotency_key="k-401")
    assert deleted.deletion_id
    assert tokens_issued(partner) == 1
    assert [e["operation"] for e in log_entries(partner)] == ["face.delete"]
    assert tokens.cached_token(conn)["token"] != "not-a-token-the-partner-issued"


@pytest.mark.django_db
def test_401_after_a_fresh_token_is_not_repeated_again(conn, partner):
    open_device(conn, device_ref=GATE, subject="subj-1", request_id="req-401-warm")  # token 1
    partner.control.set_faults(expire_tokens_early=True)
    with pytest.raises(PartnerAuthError) as raised:
        open_device(conn, device_ref=GATE, subject="subj-1", request_id="req-401-twice")
    assert raised.value.http_status == 401
    assert tokens_issued(partner) == 2  # exactly one refresh
    event = AuditEvent.objects.get(action=Action.PARTNER_OPEN, request_id="req-401-twice")
    assert (event.outcome, event.reason, event.http_status) == (Outcome.FAILURE, "http_401", 401)


# --- retries, timeouts, rate limits --------------------------------------------------------


@pytest.mark.django_db
def test_5xx_is_retried_with_backoff_for_idempotent_calls(conn, partner):
    partner.control.set_faults(fail_next=2, error_status=502)
    before = counter("smarthome_partner_requests_total", partner="sandbox", operation="face_delete",
                     outcome="http_5xx")
    deleted = delete_face(conn, subject="sub_retry", idempotency_key="k-retry")
    assert deleted.attempts == 3
    assert partner.control.faults()["fail_next"] == 0
    # the partner processed (and logged) it once; our metrics saw the two failed attempts
    assert [e["request_id"] for e in log_entries(partner)] == ["k-retry"]
    after = counter("smarthome_partner_requests_total", partner="sandbox", operation="face_delete",
                    outcome="http_5xx")
    assert after - before == 2
    event = AuditEvent.objects.get(action=Action.PARTNER_FACE_DELETE)
    assert (event.outcome, event.request_id, event.http_status) == (Outcome.SUCCESS, "k-retry", 204)


@pytest.mark.django_db
def test_5xx_retries_give_up_after_the_configured_attempts(partner):
    conn = make_conn(partner, retries=2)
    partner.control.set_faults(error_rate=1.0, error_status=503)
    with pytest.raises(PartnerServerError) as raised:
        delete_face(conn, subject="sub_gives_up", idempotency_key="k-gives-up")
    assert raised.value.attempts == 3
    assert raised.value.http_status == 503
    assert isinstance(raised.value, PartnerUnavailable)
    event = AuditEvent.objects.get(action=Action.PARTNER_FACE_DELETE)
    assert (event.outcome, event.reason, event.http_status) == (Outcome.ERROR, "http_503", 503)


@pytest.mark.django_db
def test_non_idempotent_open_is_not_retried(conn, partner):
    partner.control.set_faults(fail_next=1, error_status=503)
    with pytest.raises(PartnerServerError):
        open_device(conn, device_ref=GATE, subject="subj-1", request_id="req-no-retry")
    # one request was made (it consumed the fault); a retry would have succeeded and been logged
    assert partner.control.faults()["fail_next"] == 0
    assert log_entries(partner) == []


@pytest.mark.django_db
def test_read_timeout_raises_a_typed_timeout_within_the_budget(partner):
    conn = make_conn(partner, read_timeouts_s={"open": 0.5})
    open_device(conn, device_ref=GATE, subject="subj-1", request_id="req-warm")  # token cached
    partner.control.set_faults(hang=True)
    started = time.monotonic()
    with pytest.raises(PartnerTimeout) as raised:
        open_device(conn, device_ref=GATE, subject="subj-1", request_id="req-hang")
    elapsed = time.monotonic() - started
    partner.control.clear_faults()
    assert 0.5 <= elapsed < 1.5
    assert raised.value.retry_after_s >= 1
    event = AuditEvent.objects.get(request_id="req-hang")
    assert (event.outcome, event.reason) == (Outcome.TIMEOUT, "timeout")


@pytest.mark.django_db
def test_idempotent_timeouts_are_retried_within_the_budget(partner):
    conn = make_conn(partner, read_timeouts_s={"face_delete": 0.3}, retries=2)
    open_device(conn, device_ref=GATE, subject="subj-1", request_id="req-warm")
    partner.control.set_faults(hang=True)
    started = time.monotonic()
    with pytest.raises(PartnerTimeout) as raised:
        delete_face(conn, subject="sub_hang", idempotency_key="k-hang")
    elapsed = time.monotonic() - started
    partner.control.clear_faults()
    assert raised.value.attempts == 3
    assert 0.9 <= elapsed < 0.9 + 2 * 0.2 + 1.0  # 3 read timeouts + at most the backoff cap twice


@pytest.mark.django_db
def test_429_within_the_wait_budget_is_waited_out(conn, partner):
    open_device(conn, device_ref=GATE, subject="subj-1", request_id="req-warm")
    partner.control.set_faults(rate_limit=True, retry_after_s=1)
    threading.Timer(0.5, partner.control.clear_faults).start()
    started = time.monotonic()
    deleted = delete_face(conn, subject="sub_429", idempotency_key="k-429")
    assert time.monotonic() - started >= 1.0
    assert deleted.deletion_id
    assert [e["request_id"] for e in log_entries(partner)] == ["req-warm", "k-429"]


@pytest.mark.django_db
def test_429_beyond_the_wait_budget_raises_rate_limited_with_retry_after(conn, partner):
    partner.control.set_faults(rate_limit=True, retry_after_s=7)
    started = time.monotonic()
    with pytest.raises(RateLimited) as raised:
        open_device(conn, device_ref=GATE, subject="subj-1", request_id="req-429-long")
    assert time.monotonic() - started < 1.0
    assert raised.value.retry_after_s == 7
    problem = PartnerUnavailableProblem(raised.value)
    assert (problem.status_code, problem.wait, problem.problem_code) == (503, 7, "partner-unavailable")
    assert log_entries(partner) == []


@pytest.mark.django_db
def test_connection_refused_is_a_typed_unavailable_error(partner):
    conn = make_conn(partner, retries=1)
    partner.control.down()
    with pytest.raises(PartnerConnectionError):
        delete_face(conn, subject="sub_down", idempotency_key="k-down")
    partner.control.up()


# --- circuit breaker ------------------------------------------------------------------------


@pytest.mark.django_db
def test_breaker_opens_fails_fast_then_half_opens_and_recovers(partner):
    Partner.objects.create(pk=PARTNER_ID, name="Sandbox", slug="sandbox", api_base_url=partner.base_url)  # for /metrics
    conn = make_conn(partner, retries=0, breaker_fail_max=3, breaker_reset_s=2)
    open_device(conn, device_ref=GATE, subject="subj-1", request_id="req-warm")
    partner.control.set_faults(error_rate=1.0, error_status=503)
    for n in range(3):
        with pytest.raises(PartnerServerError):
            delete_face(conn, subject="sub_b", idempotency_key=f"k-fail-{n}")
    assert breaker_for(conn).current_state == "open"
    assert scraped("smarthome_partner_breaker_open", partner="sandbox") == 1
    # Another process sees the same state (a breaker object over the same Redis storage).
    other = PartnerBreaker(fail_max=3, reset_timeout=2, state_storage=_storage(conn))
    assert other.current_state == "open"

    partner.control.clear_faults()  # the partner is fine again, but we don't know yet
    entries_before = len(log_entries(partner))
    started = time.monotonic()
    with pytest.raises(CircuitOpen) as raised:
        delete_face(conn, subject="sub_b", idempotency_key="k-fast")
    assert time.monotonic() - started < 0.2
    assert 1 <= raised.value.retry_after_s <= 2
    assert len(log_entries(partner)) == entries_before  # nothing reached the partner
    event = AuditEvent.objects.get(request_id="k-fast")
    assert (event.outcome, event.reason, event.http_status) == (Outcome.UNAVAILABLE, "breaker_open", None)

    time.sleep(2.1)  # reset timeout: the next call is the half-open probe
    assert delete_face(conn, subject="sub_b", idempotency_key="k-probe").deletion_id
    assert breaker_for(conn).current_state == "closed"
    assert scraped("smarthome_partner_breaker_open", partner="sandbox") == 0
    assert len(log_entries(partner)) == entries_before + 1


@pytest.mark.django_db
def test_a_call_to_a_healthy_partner_is_one_redis_round_trip(conn, partner, redis_sends):
    open_device(conn, device_ref=GATE, subject="subj-1", request_id="req-warm")  # token fetched, breaker set up
    redis_sends.clear()
    assert open_device(conn, device_ref=GATE, subject="subj-1", request_id="req-one-trip").opened
    # the breaker's state with its failure count; the token from this process's copy of the shared one
    assert len(redis_sends) == 1, redis_sends
    assert b"MGET" in redis_sends[0][0]


@pytest.mark.django_db
def test_a_success_resets_the_failures_another_process_counted(conn, partner):
    open_device(conn, device_ref=GATE, subject="subj-1", request_id="req-warm")
    other = PartnerBreaker(fail_max=50, reset_timeout=30, state_storage=_storage(conn))
    other._state_storage.increment_counter()
    other._state_storage.increment_counter()
    assert breaker_for(conn)._state_storage.counter == 2
    open_device(conn, device_ref=GATE, subject="subj-1", request_id="req-success")
    assert breaker_for(conn)._state_storage.counter == 0  # failures must be consecutive to open it


@pytest.mark.django_db
def test_the_probe_that_closes_the_breaker_tells_the_outbox(partner):
    conn = make_conn(partner, retries=0, breaker_fail_max=2, breaker_reset_s=1)
    closed = []

    def receiver(sender, partner_id, **kwargs):
        closed.append(partner_id)

    partner_breaker_closed.connect(receiver, dispatch_uid="test-breaker-closed")
    try:
        open_device(conn, device_ref=GATE, subject="subj-1", request_id="req-warm")
        partner.control.set_faults(error_rate=1.0, error_status=503)
        for n in range(2):
            with pytest.raises(PartnerServerError):
                delete_face(conn, subject="sub_c", idempotency_key=f"k-c-{n}")
        with pytest.raises(CircuitOpen):
            delete_face(conn, subject="sub_c", idempotency_key="k-c-open")
        assert closed == []
        partner.control.clear_faults()
        time.sleep(1.1)
        assert delete_face(conn, subject="sub_c", idempotency_key="k-c-probe").deletion_id
        assert closed == [PARTNER_ID]
        delete_face(conn, subject="sub_c", idempotency_key="k-c-after")
        assert closed == [PARTNER_ID]  # once, when it closed
    finally:
        partner_breaker_closed.disconnect(dispatch_uid="test-breaker-closed")


@pytest.mark.django_db
def test_refused_connections_are_told_to_wait_as_the_breaker_says_never_a_flat_second(partner):
    conn = make_conn(partner, retries=0, breaker_fail_max=3, breaker_reset_s=30)
    open_device(conn, device_ref=GATE, subject="subj-1", request_id="req-warm")
    partner.control.down()
    waits = []
    try:
        for n in range(3):
            with pytest.raises(PartnerConnectionError) as raised:
                open_device(conn, device_ref=GATE, subject="subj-1", request_id=f"req-refused-{n}")
            waits.append(raised.value.retry_after_s)
        with pytest.raises(CircuitOpen) as raised:
            open_device(conn, device_ref=GATE, subject="subj-1", request_id="req-refused-open")
        waits.append(raised.value.retry_after_s)
    finally:
        partner.control.up()
    # closed: the share of the recovery time the failures used up; the call that trips it and
    # the ones refused while it is open: the rest of the recovery time
    assert waits[:2] == [10, 20]
    assert 29 <= waits[2] <= 30
    assert 28 <= waits[3] <= 30


@pytest.mark.django_db
def test_a_partners_own_429_retry_after_is_kept(partner):
    conn = make_conn(partner, retries=0, breaker_fail_max=3, breaker_reset_s=30, rate_limit_max_wait_s=0)
    partner.control.set_faults(rate_limit=True, retry_after_s=4)
    with pytest.raises(RateLimited) as raised:
        open_device(conn, device_ref=GATE, subject="subj-1", request_id="req-429")
    assert raised.value.retry_after_s == 4


@pytest.mark.django_db
def test_failed_half_open_probe_opens_the_breaker_again(partner):
    conn = make_conn(partner, retries=0, breaker_fail_max=2, breaker_reset_s=1)
    open_device(conn, device_ref=GATE, subject="subj-1", request_id="req-warm")
    partner.control.set_faults(error_rate=1.0, error_status=500)
    for n in range(2):
        with pytest.raises(PartnerServerError):
            delete_face(conn, subject="sub_p", idempotency_key=f"k-p-{n}")
    time.sleep(1.6)
    with pytest.raises(PartnerServerError):  # the probe reached the partner and failed
        delete_face(conn, subject="sub_p", idempotency_key="k-probe-fails")
    with pytest.raises(CircuitOpen):
        delete_face(conn, subject="sub_p", idempotency_key="k-after-probe")


@pytest.mark.django_db
def test_4xx_does_not_count_towards_the_breaker(partner):
    conn = make_conn(partner, retries=0, breaker_fail_max=2)
    for n in range(4):  # unknown device: 404 from a healthy partner
        with pytest.raises(PartnerRejected) as raised:
            open_device(conn, device_ref="no-such-gate", subject="subj-1", request_id=f"req-404-{n}")
        assert raised.value.http_status == 404
    assert breaker_for(conn).current_state == "closed"


# --- other operations -----------------------------------------------------------------------


@pytest.mark.django_db
def test_allowlist_versions_and_the_partner_audit_log(conn, partner):
    entries = [{"type": "plate", "token": "tok-1", "device_refs": [GATE]}]
    synced = put_allowlist(conn, site_ref="site-1", version=2, entries=entries, idempotency_key="k-al-2")
    assert (synced.version, synced.entries, synced.superseded) == (2, 1, False)
    older = put_allowlist(conn, site_ref="site-1", version=1, entries=[], idempotency_key="k-al-1")
    assert older.superseded
    since = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=1)
    log = fetch_audit_log(conn, since=since)
    assert [(e["request_id"], e["operation"], e["http_status"]) for e in log] == [
        ("k-al-2", "allowlist.replace", 200),
        ("k-al-1", "allowlist.replace", 409),
    ]


@pytest.mark.django_db
def test_token_is_never_in_the_audit_log_or_cache_key(conn, partner):
    open_device(conn, device_ref=GATE, subject="subj-1", request_id="req-secret")
    token = tokens.cached_token(conn)["token"]
    for event in AuditEvent.objects.all():
        assert token not in repr(event.__dict__)
    assert conn.client_secret not in repr(conn)
    assert cache.get(tokens._key(conn))["token"] == token


def test_partner_unavailable_becomes_503_problem_with_retry_after():
    from rest_framework.test import APIRequestFactory
    from rest_framework.views import APIView

    class DeviceOpenApi(APIView):
        authentication_classes = []
        permission_classes = []

        def post(self, request):
            error = CircuitOpen(retry_after_s=12.2, operation="open", partner="sandbox")
            raise PartnerUnavailableProblem(error) from error

    response = DeviceOpenApi.as_view()(APIRequestFactory().post("/api/v1/devices/1/open", {}, format="json"))
    assert response.status_code == 503
    assert response["Retry-After"] == "13"
    assert response["Content-Type"].startswith("application/problem+json")
    body = json.loads(response.content)
    assert (body["type"], body["status"]) == ("/problems/partner-unavailable", 503)
    assert body["retry_after_s"] == 13
    assert body["reason"] == "breaker_open"
