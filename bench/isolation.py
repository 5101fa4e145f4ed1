"""Isolation benchmark: barrier decisions and a normal resident while the public side is flooded.

    .venv/bin/python bench/isolation.py [--duration 10] [--rounds 3] [--public-workers 2] [--partner-workers 2]

Starts its own PostgreSQL and Redis, migrates, seeds a partner (certificate, OAuth2 client,
contract, barrier) and a resident with a grant, a car and an app token, and runs the deployed
topology on this machine: the public pool (smarthome.wsgi) and the partner pool
(smarthome.wsgi_partner) each in its own gunicorn with production settings, the real nginx
before them (core/nginx.py, the public listener's default limits per client address). wrk cannot
present a client certificate, so the decisions go through a second, bench-only nginx that adds
the partner's certificate (as a partner's egress proxy would): wrk -> egress nginx -> nginx's mTLS
listener -> the partner pool.

Measured, each phase alone on the machine or beside one flood (wrk, 64 connections, from
127.0.0.1 through the public listener):
- decisions: wrk, 4 connections, `POST /partner/v1/access-decisions`, alone / during a flood of
  `GET /api/v1/me` with a bad bearer token / during a flood of `POST /o/token/` with bad client
  credentials;
- a normal resident at 127.0.0.3: `GET /api/v1/devices` with a valid token, paced at --resident-rate
  requests per second over one keep-alive connection, alone / during each flood.
The phases run in --rounds rounds (alone, then each flood), so the machine's other load drifting
between phases touches every condition; printed are the medians of throughput and p50/p99 with
the ratio to the same median alone (and each round's figures), and what happened to each flood
(answered by nginx itself, or by the public pool), from nginx's access log.
Goals: decisions' p99 during a flood <= 2x alone and throughput >= 0.8x alone; the resident's
p99 during a flood <= 3x alone.
"""

import argparse
import base64
import collections
import contextlib
import datetime
import http.client
import json
import os
import secrets
import ssl
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.decisions import lua_string, seed  # noqa: E402
from bench.harness import WrkResult, gunicorn, manage, own_servers, production_env, wrk  # noqa: E402
from core import nginx  # noqa: E402
from tests import infra  # noqa: E402

PROXY_SECRET = secrets.token_urlsafe(32)
FLOOD_CONNECTIONS = 64
DECISION_CONNECTIONS = 4
RESIDENT_ADDRESS = "127.0.0.3"

DECISION_LUA = """
wrk.method = "POST"
wrk.body = {body}
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = {authorization}
"""
FLOODS = {
    "bad bearer token": ("/api/v1/me", """
wrk.method = "GET"
wrk.headers["Authorization"] = "Bearer flood-0123456789abcdefghijklmnopqrstu"
"""),
    "bad client credentials": ("/o/token/", """
wrk.method = "POST"
wrk.body = "grant_type=client_credentials"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = "Basic {basic}"
""".replace("{basic}", base64.b64encode(b"no-such-client:wrong-secret").decode())),
}

EGRESS_CONF = """
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 1024; }}
http {{
  access_log off;
{temp}
  upstream partner_listener {{ server 127.0.0.1:{partner_port}; keepalive 16; }}
  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass https://partner_listener;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host localhost;
      proxy_ssl_certificate {cert};
      proxy_ssl_certificate_key {key};
      proxy_ssl_trusted_certificate {ca};
      proxy_ssl_verify on;
      proxy_ssl_name localhost;
      proxy_ssl_session_reuse on;
    }}
  }}
}}
"""


@contextlib.contextmanager
def egress_proxy(work: Path, pki: dict, partner_port: int):
    """Plain HTTP on a local port -> nginx's mTLS listener with the partner's client certificate."""
    prefix = work / "egress"
    prefix.mkdir()
    port = infra.free_port()
    temp = "\n".join(f"  {name}_temp_path {prefix}/{name};" for name in ("client_body", "proxy", "fastcgi",
                                                                          "uwsgi", "scgi"))
    conf = prefix / "nginx.conf"
    conf.write_text(EGRESS_CONF.format(prefix=prefix, temp=temp, partner_port=partner_port, port=port,
                                       cert=pki["partner-client.pem"], key=pki["partner-client.key"],
                                       ca=pki["ca.pem"]))
    process = nginx.run(prefix, conf)
    try:
        infra.wait_for_http(f"http://127.0.0.1:{port}/healthz")
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(10)


def resident_token() -> str:
    """A resident with a grant at the seeded building, and an app token that reads their devices."""
    from django.utils import timezone
    from oauth2_provider.models import AccessToken, get_application_model, set_token_value

    from access.models import Building
    from tests import factories

    building = Building.objects.get()
    resident = factories.resident(unit_=factories.unit(building_=building))
    factories.grant(resident_=resident, building_=building)
    Application = get_application_model()
    app = Application.objects.create(
        name="Mobile app", client_id="mobile-app", client_type=Application.CLIENT_PUBLIC,
        authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
        redirect_uris="ru.smarthome.app:/oauth2redirect", algorithm="",
    )
    raw = secrets.token_urlsafe(32)
    token = AccessToken(user=resident.user, application=app, scope="devices:read",
                        expires=timezone.now() + datetime.timedelta(hours=2))
    set_token_value(token, raw)
    token.save()
    return raw


@dataclass(frozen=True)
class Paced:
    requests: int
    p50_ms: float
    p99_ms: float
    errors: int


def paced_resident(port: int, ca: Path, token: str, *, rate: float, duration_s: float) -> Paced:
    """GET /api/v1/devices from RESIDENT_ADDRESS at `rate` per second over one keep-alive connection."""
    context = ssl.create_default_context(cafile=str(ca))
    connection = http.client.HTTPSConnection("localhost", port, timeout=30, context=context,
                                             source_address=(RESIDENT_ADDRESS, 0))
    latencies, errors = [], 0
    started = time.monotonic()
    for n in range(int(rate * duration_s)):
        time.sleep(max(0.0, started + n / rate - time.monotonic()))
        begun = time.perf_counter()
        try:
            connection.request("GET", "/api/v1/devices", headers={"Authorization": f"Bearer {token}"})
            response = connection.getresponse()
            response.read()
            ok = response.status == 200
        except (OSError, http.client.HTTPException):
            connection.close()
            ok = False
        latencies.append((time.perf_counter() - begun) * 1000)
        errors += not ok
    connection.close()
    cuts = statistics.quantiles(latencies, n=100)
    return Paced(requests=len(latencies), p50_ms=cuts[49], p99_ms=cuts[98], errors=errors)


@contextlib.contextmanager
def flooding(url: str, script: Path, duration_s: int):
    """wrk flooding `url` in the background for `duration_s`; yields a list that receives its result."""
    result: list[WrkResult] = []
    thread = threading.Thread(target=lambda: result.append(
        wrk(url, connections=FLOOD_CONNECTIONS, duration_s=duration_s, threads=2, script=script)))
    thread.start()
    time.sleep(1.5)  # the flood is in full swing before the measured load starts
    try:
        yield result
    finally:
        thread.join()


class AccessLog:
    """nginx's JSON access log, read from where the last phase stopped."""

    def __init__(self, path: Path, public_port: int):
        self.path, self.public_port, self.offset = path, str(public_port), 0

    def skip(self) -> None:
        self.offset = self.path.stat().st_size

    def public_outcomes(self) -> collections.Counter:
        """(answered by, status) of the public listener's requests since the last call."""
        with self.path.open("rb") as log:
            log.seek(self.offset)
            lines = log.read().splitlines()
            self.offset = log.tell()
        outcomes = collections.Counter()
        for line in lines:
            entry = json.loads(line)
            if entry["listener"] == self.public_port:
                by = "public pool" if entry["upstream_s"] not in ("", "-") else "nginx"
                outcomes[(by, entry["status"])] += 1
        return outcomes


def load_average() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds of each measured phase")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of alone / each flood (medians are reported)")
    parser.add_argument("--public-workers", type=int, default=2)
    parser.add_argument("--partner-workers", type=int, default=2)
    parser.add_argument("--resident-rate", type=float, default=15.0, help="the normal resident's requests per second")
    args = parser.parse_args()

    from partners.devcerts import generate_dev_pki

    work = Path(tempfile.mkdtemp(prefix="smarthome-bench-isolation-"))
    os.chmod(work, 0o755)  # noqa: S103 - nginx's workers (nobody) reach their temp paths in it
    pki = generate_dev_pki(work / "pki")
    with own_servers() as (database_url, redis_url):
        # the paced resident must not meet the per-user limit
        env = production_env(database_url, redis_url, proxy_secret=PROXY_SECRET, API_RATE_PER_MIN="1000000")
        manage("migrate", "--noinput", env=env)
        os.environ.update(env)
        import django

        django.setup()
        body, client = seed(pki, cidrs=["127.0.0.0/8"])
        app_token = resident_token()
        with gunicorn(env, workers=args.public_workers) as public, \
                gunicorn(env, workers=args.partner_workers, app="smarthome.wsgi_partner") as partner:
            config = nginx.ProxyConfig(
                prefix=work / "nginx", upstream=public.removeprefix("http://"),
                partner_upstream=partner.removeprefix("http://"), public_port=infra.free_port(),
                partner_port=infra.free_port(), server_cert=pki["smarthome-server.pem"],
                server_key=pki["smarthome-server.key"], partner_ca=pki["ca.pem"], proxy_secret=PROXY_SECRET,
            )
            edge = nginx.start(config)
            try:
                public_url = f"https://localhost:{config.public_port}"
                infra.wait_for_http(f"{public_url}/healthz", verify=str(pki["ca.pem"]))
                with egress_proxy(work, pki, config.partner_port) as egress:
                    results = measure(args, work, config, egress, public_url, body, client, app_token, pki)
            finally:
                edge.terminate()
                edge.wait(10)
    report(args, config, *results)


def measure(args, work, config, egress, public_url, body, client, app_token, pki):
    import requests

    token = requests.post(f"{egress}/o/token/", data={"grant_type": "client_credentials"},
                          auth=tuple(client.split(":", 1)), timeout=10)
    token.raise_for_status()
    decision_lua = work / "decision.lua"
    decision_lua.write_text(DECISION_LUA.format(body=lua_string(json.dumps(body)),
                                                authorization=lua_string(f"Bearer {token.json()['access_token']}")))
    check = requests.post(f"{egress}/partner/v1/access-decisions", data=json.dumps(body), timeout=10, headers={
        "Content-Type": "application/json", "Authorization": f"Bearer {token.json()['access_token']}"})
    if check.status_code != 200 or check.json()["decision"] != "allow":
        access = (config.prefix / "access.log").read_text().splitlines()[-3:]
        raise SystemExit(f"the decision endpoint refused the seeded car: {check.status_code} {check.text}\n"
                         + "\n".join(access))
    scripts = {}
    for name, (path, lua) in FLOODS.items():
        scripts[name] = (f"{public_url}{path}", work / f"flood-{len(scripts)}.lua")
        scripts[name][1].write_text(lua)
    decide = f"{egress}/partner/v1/access-decisions"
    loads = [load_average()]
    wrk(decide, connections=DECISION_CONNECTIONS, duration_s=3, script=decision_lua)  # warm-up
    paced_resident(config.public_port, pki["ca.pem"], app_token, rate=args.resident_rate, duration_s=2)
    log = AccessLog(config.prefix / "access.log", config.public_port)

    def decisions_now():
        return wrk(decide, connections=DECISION_CONNECTIONS, duration_s=args.duration, script=decision_lua)

    def resident_now():
        return paced_resident(config.public_port, pki["ca.pem"], app_token, rate=args.resident_rate,
                              duration_s=args.duration)

    # Rounds of alone / flood / flood, so a change in the machine's other load between phases
    # shows in every condition rather than in one.
    decisions, resident, floods = collections.defaultdict(list), collections.defaultdict(list), {}
    for _ in range(args.rounds):
        decisions["alone"].append(decisions_now())
        resident["alone"].append(resident_now())
        for name, (url, script) in scripts.items():
            log.skip()
            with flooding(url, script, args.duration + 3) as flood:
                decisions[name].append(decisions_now())
            floods[name] = (flood[0], log.public_outcomes())
            with flooding(url, script, args.duration + 3):
                resident[name].append(resident_now())
        loads.append(load_average())
    return decisions, resident, floods, loads


def median_of(results: list, field: str) -> float:
    return statistics.median(getattr(result, field) for result in results)


def report(args, config, decisions, resident, floods, loads):
    print(f"isolation benchmark: public pool {args.public_workers} + partner pool {args.partner_workers} sync workers "
          f"(gunicorn, production settings), PostgreSQL + Redis, the real nginx; its public limits "
          f"{config.public_rate_per_s} r/s, burst {config.public_burst}, {config.public_connections} in progress "
          f"per address; {os.cpu_count()} cores; {args.rounds} rounds of {args.duration} s phases, medians below; "
          f"load average at the start and after each round: {' | '.join(loads)}")
    ratios = {"p99": [], "throughput": [], "resident": []}
    print(f"\ndecisions (wrk {DECISION_CONNECTIONS} connections through the mTLS listener)")
    for name, results in decisions.items():
        rate, p50, p99 = (median_of(results, field) for field in ("requests_per_s", "p50_ms", "p99_ms"))
        alone_rate, alone_p99 = median_of(decisions["alone"], "requests_per_s"), median_of(decisions["alone"], "p99_ms")
        label = "alone" if name == "alone" else f"during a flood: {name}"
        rounds = ", ".join(f"{r.requests_per_s:.0f}/s {r.p99_ms:.1f} ms" for r in results)
        print(f"  {label:<40} {rate:>6.0f} req/s   p50 {p50:>6.2f} ms   p99 {p99:>7.2f} ms   "
              f"p99 x{p99 / alone_p99:.2f}   throughput x{rate / alone_rate:.2f}   (rounds: {rounds}; "
              f"non-2xx/errors {sum(r.errors for r in results)})")
        if name != "alone":
            ratios["p99"].append(p99 / alone_p99)
            ratios["throughput"].append(rate / alone_rate)
    print(f"\na normal resident at {RESIDENT_ADDRESS} (GET /api/v1/devices, {args.resident_rate:g}/s, one connection)")
    for name, results in resident.items():
        p50, p99 = median_of(results, "p50_ms"), median_of(results, "p99_ms")
        alone_p99 = median_of(resident["alone"], "p99_ms")
        label = "alone" if name == "alone" else f"during a flood: {name}"
        rounds = ", ".join(f"{r.p99_ms:.1f} ms" for r in results)
        print(f"  {label:<40} p50 {p50:>6.2f} ms   p99 {p99:>7.2f} ms   p99 x{p99 / alone_p99:.2f}   "
              f"(rounds p99: {rounds}; failed {sum(r.errors for r in results)} of {sum(r.requests for r in results)})")
        if name != "alone":
            ratios["resident"].append(p99 / alone_p99)
    print(f"\nthe floods (wrk {FLOOD_CONNECTIONS} connections from 127.0.0.1 through the public listener; last round)")
    for name, (result, outcomes) in floods.items():
        total = sum(outcomes.values()) or 1
        by_nginx = sum(n for (by, _), n in outcomes.items() if by == "nginx")
        reached = ", ".join(f"{status}: {n}" for (by, status), n in sorted(outcomes.items()) if by == "public pool")
        print(f"  {name:<24} {result.requests_per_s:>8.0f} req/s   answered by nginx itself {by_nginx / total:.1%}; "
              f"reached the public pool: {reached or 'none'}")
    print(f"\ngoals: decisions p99 during a flood x{max(ratios['p99']):.2f} (<= 2), throughput "
          f"x{min(ratios['throughput']):.2f} (>= 0.8); resident p99 during a flood "
          f"x{max(ratios['resident']):.2f} (<= 3)")


if __name__ == "__main__":
    main()
