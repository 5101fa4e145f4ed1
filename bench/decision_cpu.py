"""What one partner decision costs in Python, per request, without HTTP or wrk.

    .venv/bin/python bench/decision_cpu.py [--requests 2000] [--rounds 3] [--residents 2000] [--profile 30]

Own PostgreSQL and Redis, production settings, the partner pool's WSGI application called in this
process (every middleware, DRF, the view, the decision, its audit event and counters: what a gunicorn
worker runs between reading a request and writing its answer). bench/decisions_scale.py's seeding:
one car at one barrier and `--residents` cars in 40 buildings. For each variant, `--requests`
requests, rounds interleaved so a busy machine weighs on all alike; prints per request this
process's CPU time (immune to other processes on the machine, unlike wall time) and wall time, the
median of the rounds:

- the bare Django JSON view (bench/urls.py) through the same middleware;
- the floor: the bare view plus the decision's three round trips, no decision logic;
- one car, nothing changing (every fact cached);
- many cars, a random one per request (after every car was asked once: cached);
- one car as before the last changes to the path, in the same run: the change-log read as a statement
  of its own before the audit insert (no `assume_unchanged`), and pseudonymous refs computed anew
  every time (no per-process cache) - patched in this process for that variant only.

`--profile N` then profiles the one-car decision with cProfile and prints the N functions with the
most time of their own, and the same for cumulative time: where the Python of a decision goes.
"""

import argparse
import contextlib
import cProfile
import io
import json
import os
import pstats
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.decisions import PARTNER_IP, PROXY_SECRET, seed  # noqa: E402
from bench.decisions_scale import seed_complex  # noqa: E402
from bench.harness import manage, own_servers, production_env  # noqa: E402


class InProcessClient:
    """Calls a WSGI application with the headers the trusted proxy adds for the partner."""

    def __init__(self, application, cert_header: str):
        self.application = application
        self.headers = {"HTTP_X_CLIENT_CERT": cert_header, "HTTP_X_CLIENT_VERIFY": "SUCCESS",
                        "HTTP_X_FORWARDED_FOR": PARTNER_IP, "HTTP_X_FORWARDED_PROTO": "https",
                        "HTTP_X_PROXY_AUTH": PROXY_SECRET}

    def post(self, path: str, body: bytes, content_type: str = "application/json", **headers) -> tuple[str, bytes]:
        path, _, query = path.partition("?")
        environ = {
            "REQUEST_METHOD": "POST", "PATH_INFO": path, "QUERY_STRING": query, "SCRIPT_NAME": "",
            "CONTENT_TYPE": content_type, "CONTENT_LENGTH": str(len(body)), "wsgi.input": io.BytesIO(body),
            "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8001", "SERVER_PROTOCOL": "HTTP/1.1",
            "REMOTE_ADDR": "127.0.0.1", "wsgi.url_scheme": "http", "wsgi.errors": sys.stderr,
            "wsgi.multithread": False, "wsgi.multiprocess": True, "wsgi.run_once": False,
            **self.headers, **headers,
        }
        status = []
        chunks = self.application(environ, lambda s, h, exc_info=None: status.append(s))
        try:
            answer = b"".join(chunks)
        finally:
            getattr(chunks, "close", lambda: None)()
        return status[0], answer


def partner_token(client: InProcessClient, credentials: str) -> str:
    import base64

    status, answer = client.post("/o/token/", b"grant_type=client_credentials",
                                 content_type="application/x-www-form-urlencoded",
                                 HTTP_AUTHORIZATION="Basic " + base64.b64encode(credentials.encode()).decode())
    if not status.startswith("200"):
        raise SystemExit(f"no token: {status} {answer[:300]!r}")
    return json.loads(answer)["access_token"]


def run(client: InProcessClient, path: str, bodies: list[bytes], requests: int, headers: dict) -> tuple[float, float]:
    """(CPU µs, wall µs) per request; every answer must be 200."""
    pick = random.Random(7).choice
    chosen = [pick(bodies) for _ in range(requests)]
    wall, cpu = time.perf_counter(), time.process_time()
    for body in chosen:
        status, answer = client.post(path, body, **headers)
        if not status.startswith("200"):
            raise SystemExit(f"{path} answered {status}: {answer[:300]!r}")
    return (time.process_time() - cpu) / requests * 1e6, (time.perf_counter() - wall) / requests * 1e6


def _package(filename: str) -> str:
    """The distribution or project app a profiled function belongs to."""
    if filename.startswith("~") or filename.startswith("<"):
        return "builtins (C)"
    path = Path(filename)
    parts = path.parts
    if "site-packages" in parts:
        return parts[parts.index("site-packages") + 1].split(".")[0]
    try:
        return path.resolve().relative_to(ROOT).parts[0]
    except ValueError:
        return "python stdlib"


def print_by_package(stats: pstats.Stats, requests: int) -> None:
    """Own time (cProfile's tottime: profiler overhead included, so compare shares) per package."""
    own: dict[str, float] = {}
    for (filename, _, _), (_, _, tottime, _, _) in stats.stats.items():
        own[_package(filename)] = own.get(_package(filename), 0.0) + tottime
    total = sum(own.values())
    print(f"\nown time of one decision by package (cProfile, {requests} one-car decisions; waits included):")
    print(f"| {'package':<24} | {'µs/request':>10} | {'share':>6} |")
    print(f"|{'-' * 26}|{'-' * 12}|{'-' * 8}|")
    for name, seconds in sorted(own.items(), key=lambda item: -item[1]):
        if seconds / total >= 0.005:
            print(f"| {name:<24} | {seconds / requests * 1e6:>10.0f} | {seconds / total:>6.1%} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--residents", type=int, default=2000)
    parser.add_argument("--buildings", type=int, default=40)
    parser.add_argument("--profile", type=int, default=0, metavar="N", help="print the N costliest functions")
    parser.add_argument("--profile-out", help="also write the profile to this file (pstats)")
    args = parser.parse_args()

    from partners.devcerts import generate_dev_pki

    work = Path(tempfile.mkdtemp(prefix="smarthome-bench-decision-cpu-"))
    pki = generate_dev_pki(work / "pki")
    with own_servers() as (database_url, redis_url):
        env = production_env(database_url, redis_url, proxy_secret=PROXY_SECRET, SMARTHOME_POOL="partner")
        manage("migrate", "--noinput", env=env)
        os.environ.update(env)
        import django

        django.setup()
        body, credentials = seed(pki)
        many, _ = seed_complex(residents=args.residents, buildings=args.buildings)
        from smarthome.wsgi_partner import application

        client = InProcessClient(application, quote(pki["partner-client.pem"].read_text()))
        auth = {"HTTP_AUTHORIZATION": f"Bearer {partner_token(client, credentials)}"}
        one_car = [json.dumps(body).encode()]
        many_cars = [json.dumps(item).encode() for item in many]
        from access.api import partner_decisions
        from core.security import identifiers

        def as_before():
            stack = contextlib.ExitStack()
            stack.enter_context(mock.patch.object(partner_decisions, "assume_unchanged", return_value=None))
            stack.enter_context(mock.patch.object(identifiers, "_ref", identifiers._ref.__wrapped__))
            return stack

        variants = [
            ("bare Django JSON view", "/bench/bare", one_car, contextlib.nullcontext),
            ("floor (bare + three round trips)", "/bench/floor", one_car, contextlib.nullcontext),
            ("one car, nothing changing", "/partner/v1/access-decisions", one_car, contextlib.nullcontext),
            ("one car, as before (2 statements)", "/partner/v1/access-decisions", one_car, as_before),
            ("many cars, nothing changing", "/partner/v1/access-decisions", many_cars, contextlib.nullcontext),
        ]
        for item in many_cars:  # every car's facts loaded once
            client.post("/partner/v1/access-decisions", item, **auth)
        results = {label: [] for label, *_ in variants}
        load_before = os.getloadavg()
        for _ in range(args.rounds):
            for label, path, bodies, patched in variants:
                with patched():
                    run(client, path, bodies, 50, auth)  # warm the connection and this variant's code
                    results[label].append(run(client, path, bodies, args.requests, auth))
        load_after = os.getloadavg()
        print(f"one partner decision in Python, in process (no HTTP), {args.requests} requests x {args.rounds} rounds "
              f"(median); load average {load_before[0]:.2f} before, {load_after[0]:.2f} after")
        print(f"| {'request':<34} | {'CPU µs/request':>14} | {'wall µs/request':>15} |")
        print(f"|{'-' * 36}|{'-' * 16}|{'-' * 17}|")
        for label, values in results.items():
            print(f"| {label:<34} | {statistics.median(c for c, _ in values):>14.0f} | "
                  f"{statistics.median(w for _, w in values):>15.0f} |")
        if args.profile:
            profiler = cProfile.Profile()
            profiler.enable()
            run(client, "/partner/v1/access-decisions", one_car, args.requests, auth)
            profiler.disable()
            print_by_package(pstats.Stats(profiler), args.requests)
            if args.profile_out:
                profiler.dump_stats(args.profile_out)
            for order in ("tottime", "cumulative"):
                out = io.StringIO()
                pstats.Stats(profiler, stream=out).sort_stats(order).print_stats(args.profile)
                print(f"\nprofile of {args.requests} one-car decisions, by {order}:")
                print("\n".join(line for line in out.getvalue().splitlines() if line.strip()))


if __name__ == "__main__":
    main()
