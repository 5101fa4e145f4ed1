"""Access-decision benchmark: POST /partner/v1/access-decisions vs a bare Django JSON view.

    .venv/bin/python bench/decisions.py [--connections 32] [--duration 10] [--workers 2]

Starts its own PostgreSQL and Redis, migrates, seeds one partner (certificate, OAuth2 client,
contract, barrier) and one resident with a grant and a car, and serves the partner pool
(smarthome.wsgi_partner: the partner API's URLs and middleware) with gunicorn in production
settings (bench.settings = production + the bare view at /bench/bare, behind the same middleware).
The partner's token comes from the real /o/token/ endpoint. wrk then POSTs the same request to
both URLs with the headers nginx would add (verified certificate, X-Forwarded-For/-Proto and the
proxy secret in X-Proxy-Auth: the bench stands in for the trusted proxy on 127.0.0.1). Every
decision is a full one: mTLS certificate lookup (cached), IP allowlist, token + RFC 8705 binding, scope, rate limit, the
decision queries, its audit event and the anomaly counters. Prints throughput, p50/p99 and
the ratio decision/bare (target: >= 0.6 on 2 cores, p99 < 50 ms at 32 connections).

Between the two it measures the floor: the bare view plus the round trips a decision makes to
keep its promises, one at a time and all three (bench/urls.py, `bench/floor?steps=`), with the
same functions and no decision logic - where the time goes, and the most a decision can reach.
"""

import argparse
import base64
import json
import os
import secrets
import sys
import tempfile
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.harness import gunicorn, manage, own_servers, production_env, wrk  # noqa: E402

PARTNER_IP = "203.0.113.7"
PROXY_SECRET = secrets.token_urlsafe(32)  # what nginx would send in X-Proxy-Auth
# bench/floor?steps=...: the bare view plus round trips every decision makes (see bench/urls.py)
FLOORS = [
    ("version", "bare + data-version read"),
    ("counters", "bare + Redis counters"),
    ("audit", "bare + audit INSERT"),
    ("version,counters,audit", "bare + all three (floor)"),
]

LUA = """
wrk.method = "POST"
wrk.body = {body}
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = {authorization}
wrk.headers["X-Client-Cert"] = {cert}
wrk.headers["X-Client-Verify"] = "SUCCESS"
wrk.headers["X-Forwarded-For"] = "{ip}"
wrk.headers["X-Forwarded-Proto"] = "https"
wrk.headers["X-Proxy-Auth"] = "{proxy_secret}"
"""


def lua_string(value: str) -> str:
    return json.dumps(value)  # a JSON string literal is a valid Lua string literal for ASCII text


def seed(pki: dict, *, cidrs: tuple[str, ...] = ("203.0.113.0/24",)) -> tuple[dict, str]:
    """Partner (calling from `cidrs`), OAuth2 client, building, barrier, resident, grant, car.
    Returns (body, client credentials)."""
    from oauth2_provider.models import get_application_model

    from access.models import VehiclePlateToken
    from partners.models import PartnerApplication
    from partners.services import partner_credentials_rotate
    from tests import factories

    partner = factories.partner(with_credentials=False)
    partner_credentials_rotate(partner=partner, client_id="smarthome", client_cert_pem=pki["partner-client.pem"]
                               .read_text(), allowed_cidrs=list(cidrs))
    Application = get_application_model()
    secret = secrets.token_urlsafe(24)
    app = Application.objects.create(name="bench partner", client_id="bench-partner", client_secret=secret,
                                     client_type=Application.CLIENT_CONFIDENTIAL,
                                     authorization_grant_type=Application.GRANT_CLIENT_CREDENTIALS)
    PartnerApplication.objects.create(partner=partner, application=app)
    building = factories.building()
    factories.contract(partner_=partner, company_=building.company, buildings=[building])
    device = factories.device(building_=building, partner_=partner, kind="barrier", partner_device_ref="gate-1")
    resident = factories.resident(unit_=factories.unit(building_=building))
    factories.grant(resident_=resident, building_=building)
    vehicle = factories.vehicle(resident_=resident)
    token = VehiclePlateToken.objects.get(vehicle=vehicle, partner=partner).token
    body = {"device_ref": device.partner_device_ref, "credential": {"type": "plate", "token": token},
            "request_id": "bench-1", "observed_at": "2026-01-01T00:00:00Z"}
    return body, f"{app.client_id}:{secret}"


def fetch_token(url: str, client: str, cert_header: str) -> str:
    import requests

    response = requests.post(
        f"{url}/o/token/", data={"grant_type": "client_credentials"},
        headers={"Authorization": "Basic " + base64.b64encode(client.encode()).decode(),
                 "X-Client-Cert": cert_header, "X-Client-Verify": "SUCCESS", "X-Forwarded-For": PARTNER_IP,
                 "X-Forwarded-Proto": "https", "X-Proxy-Auth": PROXY_SECRET}, timeout=10,
    )
    response.raise_for_status()
    return response.json()["access_token"]


def check_answers(url: str, token: str, cert_header: str, bodies: list[dict]) -> None:
    """Every body is an allowed decision and every floor answers, before anything is measured."""
    import requests

    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}", "X-Client-Cert": cert_header,
               "X-Client-Verify": "SUCCESS", "X-Forwarded-For": PARTNER_IP, "X-Forwarded-Proto": "https",
               "X-Proxy-Auth": PROXY_SECRET}
    for body in bodies:
        answer = requests.post(f"{url}/partner/v1/access-decisions", data=json.dumps(body), headers=headers, timeout=10)
        if answer.status_code != 200 or answer.json()["decision"] != "allow":
            raise SystemExit(f"the decision endpoint refused a seeded car: {answer.status_code} {answer.text}")
    for steps, _ in FLOORS:
        answer = requests.post(f"{url}/bench/floor?steps={steps}", timeout=10)
        if answer.status_code != 200:
            raise SystemExit(f"the floor view failed: {answer.status_code} {answer.text}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    from partners.devcerts import generate_dev_pki

    work = Path(tempfile.mkdtemp(prefix="smarthome-bench-decisions-"))
    pki = generate_dev_pki(work / "pki")
    with own_servers() as (database_url, redis_url):
        env = production_env(database_url, redis_url, proxy_secret=PROXY_SECRET)
        manage("migrate", "--noinput", env=env)
        os.environ.update(env)
        import django

        django.setup()
        body, client = seed(pki)
        cert_header = quote(pki["partner-client.pem"].read_text())
        with gunicorn(env, workers=args.workers, app="smarthome.wsgi_partner") as url:
            token = fetch_token(url, client, cert_header)
            script = work / "decision.lua"
            script.write_text(LUA.format(body=lua_string(json.dumps(body)), authorization=lua_string(f"Bearer {token}"),
                                         cert=lua_string(cert_header), ip=PARTNER_IP,
                                         proxy_secret=PROXY_SECRET))
            check_answers(url, token, cert_header, [body])
            wrk(f"{url}/bench/bare", connections=args.connections, duration_s=2, script=script)  # warm-up
            bare = wrk(f"{url}/bench/bare", connections=args.connections, duration_s=args.duration, script=script)
            floors = [(label, wrk(f"{url}/bench/floor?steps={steps}", connections=args.connections,
                                  duration_s=args.duration, script=script)) for steps, label in FLOORS]
            decision = wrk(f"{url}/partner/v1/access-decisions", connections=args.connections,
                           duration_s=args.duration, script=script)
        from audit.models import AuditEvent

        recorded = AuditEvent.objects.filter(action="access.decision").exclude(actor_ref="bench:floor").count()

    print(f"access-decision benchmark (gunicorn {args.workers} sync workers, production settings, PostgreSQL + "
          f"Redis, wrk {args.connections} connections x {args.duration} s, {os.cpu_count()} cores)")
    for label, result in [("bare Django JSON view", bare), *floors, ("POST access-decisions", decision)]:
        print(f"{result.row(label)}   ratio {result.requests_per_s / bare.requests_per_s:.2f}")
    print(f"errors / non-2xx: bare {bare.errors}, floors {sum(result.errors for _, result in floors)}, "
          f"decisions {decision.errors}; decisions audited: {recorded}")
    print(f"ratio decision/bare: {decision.requests_per_s / bare.requests_per_s:.2f} (target >= 0.60); "
          f"decision p99 {decision.p99_ms:.1f} ms (target < 50 ms)")
    print(f"the floor (bare + all three round trips, no logic) is the most a decision that keeps its promises can "
          f"reach here: {floors[-1][1].requests_per_s / bare.requests_per_s:.2f}; the decision gets "
          f"{decision.requests_per_s / floors[-1][1].requests_per_s:.0%} of it")


if __name__ == "__main__":
    main()
