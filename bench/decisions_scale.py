"""Access decisions at a complex's scale, with and without managers changing grants meanwhile.

    .venv/bin/python bench/decisions_scale.py [--residents 2000] [--buildings 40] [--writes 2]
        [--connections 32] [--duration 10] [--workers 2] [--rounds 1] [--warmups 8]

bench/decisions.py sends one car to one barrier with nothing changing. This one seeds, beside that
car, `--residents` residents with a grant and a car each in `--buildings` buildings (one barrier per
building, one partner contract over all of them), writes one request body per resident (their car
at their own building's barrier) to a file, and has wrk pick one of them at random for every
request (a Lua script). Same stack as bench/decisions.py: own PostgreSQL and Redis, gunicorn sync
workers in production settings, the partner's token from /o/token/, the trusted proxy's headers.

Each round measures, on the same server, one after another (wrk, --connections x --duration):
- the bare Django JSON view and the floor (bench/urls.py: the bare view plus the data-version
  read, the Redis counters and the audit INSERT, one at a time and together), with the same
  random bodies;
- one car, nothing changing (bench/decisions.py's request);
- many cars, nothing changing, after a warm-up: runs of the same length until the workers' fact
  caches answer >= 99 % of a run's lookups (at most --warmups), so every worker has loaded the cars
  whatever the machine's load (the warm-up rates and hit ratios are printed: a cold worker loads a
  car's facts per request);
- many cars while a writer suspends a random resident's grant and resumes it --writes times per
  second (every write through the services: access.services.grants, with its audit event and
  allowlist patch);
- many cars with one grant change every 5 seconds.
Prints every row with req/s, p50, p99 and the ratio to the bare view of the same round, the
ratio of each churn run to the run without writes, the writes the writer made (and how long they
took), how many decisions saw a suspended grant, and the load average before and after.
Goals: under churn >= 0.9x the throughput without it and p99 < 50 ms; the floor >= 0.5 of bare
and the decision >= 0.45 of bare.

Beside the floor rows: the floor as the decision now makes it (the counters, and the version check
and audit insert as one statement), and - with PostgreSQL switched to production's durable commits
for them (bench.harness.durable_commits; the bench's server runs without fsync or synchronous
commit) - the audit insert alone and one car. Then "what holds it back", from the same runs: the CPU
each process group spent per request (gunicorn, PostgreSQL, Redis, wrk - on 2 shared cores a run can
at most reach 2 cores / that total), the fact cache's loads per request and hit ratio (the workers'
counters, bench/caches), and what each step adds over the row it builds on.
"""

import argparse
import json
import os
import random
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.decisions import (  # noqa: E402
    FLOORS,
    LUA,
    PARTNER_IP,
    PROXY_SECRET,
    check_answers,
    fetch_token,
    lua_string,
    seed,
)
from bench.harness import (  # noqa: E402
    CpuMeter,
    WrkResult,
    durable_commits,
    gunicorn,
    manage,
    own_servers,
    production_env,
    wrk,
)

SLOW_WRITES_PER_S = 0.2  # the "one grant change every 5 s"
STRUCTURE_TAG = "access"  # access.policy's fact cache (core.cache.versioned.lookups)
GROUPS = ("gunicorn", "PostgreSQL", "Redis", "wrk")
BARE = "bare Django JSON view"
FOLDED = "bare + counters + version and audit in ONE statement"
ONE_CAR = "one car, nothing changing"
MANY_CARS = "many cars, nothing changing"
DURABLE_AUDIT = "bare + audit INSERT, durable commit"
DURABLE_ONE_CAR = "one car, durable commit"


@dataclass
class Row:
    label: str
    result: WrkResult
    note: str = ""
    hits: int = 0  # fact-cache lookups answered from the cache during the run, every worker
    loads: int = 0  # ... and loaded from the database

# wrk: one of the residents' request bodies at random per request (a file, one JSON body a line)
MANY_CARS_LUA = LUA.replace('wrk.body = {body}\n', '') + """
local bodies = {{}}
for line in io.lines({bodies_file}) do bodies[#bodies + 1] = line end
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("thread_number", threads)
end
function init(args)
  math.randomseed(os.time() * 7919 + (thread_number or 0))
end
function request()
  return wrk.format(nil, nil, nil, bodies[math.random(#bodies)])
end
"""


def seed_complex(*, residents: int, buildings: int) -> tuple[list[dict], list[int]]:
    """One company's `buildings` buildings with a barrier each, under one contract of the bench's
    partner, and `residents` residents (an owned flat, a grant on their building, a car) spread
    over them. The residents' rows are bulk-inserted (the services take ~0.1 s per resident with
    their audit events and allowlist patches; the decisions only read the rows); the plate
    tokens come from the service that rebuilds a partner's tokens. Returns the request bodies
    (each car at its own building's barrier) and the grant ids."""
    import datetime

    from django.contrib.auth import get_user_model
    from django.db import transaction
    from django.utils import timezone

    from access.models import AccessGrant, Residency, Resident, Unit, Vehicle, VehiclePlateToken
    from access.plates import normalise_plate
    from access.services.plate_tokens import plate_tokens_rebuild
    from partners.models import PartnerApplication
    from tests import factories

    partner = PartnerApplication.objects.select_related("partner").get(application__client_id="bench-partner").partner
    company = factories.company()
    sites = [factories.building(company_=company) for _ in range(buildings)]
    factories.contract(partner_=partner, company_=company, buildings=sites)
    gates = [factories.device(building_=site, partner_=partner, kind="barrier", partner_device_ref=f"gate-b{n}")
             for n, site in enumerate(sites)]
    User = get_user_model()
    since = timezone.now() - datetime.timedelta(days=1)
    with transaction.atomic():
        users = [User(username=f"r-bench-{n}") for n in range(residents)]
        for user in users:
            user.set_unusable_password()
        User.objects.bulk_create(users)
        people = Resident.objects.bulk_create([
            Resident(user=user, company=company, full_name=f"Житель {n}", phone=f"+7916{n:07d}")
            for n, user in enumerate(users)
        ])
        flats = Unit.objects.bulk_create([Unit(building=sites[n % buildings], number=f"{n + 1}")
                                          for n in range(residents)])
        Residency.objects.bulk_create([Residency(resident=person, unit=flat, kind="owner", valid_from=since.date())
                                       for person, flat in zip(people, flats, strict=True)])
        grants = AccessGrant.objects.bulk_create([
            AccessGrant(resident=person, building=sites[n % buildings], valid_from=since)
            for n, person in enumerate(people)
        ])
        cars = Vehicle.objects.bulk_create([Vehicle(resident=person, plate=normalise_plate(factories.unique_plate()))
                                            for person in people])
    plate_tokens_rebuild(partner_id=partner.pk)
    tokens = dict(VehiclePlateToken.objects.filter(partner=partner).values_list("vehicle_id", "token"))
    bodies = [{"device_ref": gates[n % buildings].partner_device_ref,
               "credential": {"type": "plate", "token": tokens[car.pk]},
               "request_id": f"bench-{n}", "observed_at": "2026-01-01T00:00:00Z"} for n, car in enumerate(cars)]
    return bodies, [grant.pk for grant in grants]


class GrantWriter:
    """Suspends a random grant, then resumes it, `per_s` changes a second, through the services,
    in a thread of this process (its own database connection) while wrk runs."""

    def __init__(self, grant_ids: list[int], per_s: float):
        self.grant_ids, self.interval = grant_ids, 1 / per_s
        self.writes, self.seconds = 0, []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self.started = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(30)
        self.elapsed = time.monotonic() - self.started

    def _run(self):
        from django.db import connection

        from access.models import AccessGrant
        from access.services.grants import grant_resume, grant_suspend

        suspended = None
        due = time.monotonic()
        try:
            while not self._stop.is_set():
                due += self.interval
                started = time.monotonic()
                if suspended is None:
                    suspended = AccessGrant.objects.get(pk=random.choice(self.grant_ids))
                    grant_suspend(grant=suspended)
                else:
                    grant_resume(grant=suspended)
                    suspended = None
                self.writes += 1
                self.seconds.append(time.monotonic() - started)
                self._stop.wait(max(due - time.monotonic(), 0))
            if suspended is not None:
                grant_resume(grant=suspended)
        finally:
            connection.close()

    def summary(self) -> str:
        rate = self.writes / self.elapsed if self.elapsed else 0
        seconds = sorted(self.seconds) or [0.0]
        return (f"{self.writes} grant changes in {self.elapsed:.1f} s ({rate:.2f}/s), each "
                f"p50 {seconds[len(seconds) // 2] * 1000:.0f} ms, max {seconds[-1] * 1000:.0f} ms")


def _load() -> str:
    return "load average " + " ".join(f"{value:.2f}" for value in os.getloadavg())


def _suspended_decisions() -> int:
    from audit.models import AuditEvent

    return AuditEvent.objects.filter(action="access.decision", reason="grant_suspended").count()


def warm_up(url: str, script: Path, run: dict, most: int, meter: CpuMeter) -> list[str]:
    """Run `script` against `url` until the workers' fact caches answer at least 99 % of a run's
    lookups (every worker has loaded what it is asked for: a cold worker loads a car's facts per
    request, and a run's rate says more about how warm the caches are than about the path), at
    most `most` runs; each run's rate and hit ratio."""
    runs = []
    while len(runs) < most:
        row = measured("warm-up", url, script, run, meter)
        lookups = row.hits + row.loads
        runs.append(f"{row.result.requests_per_s:.0f} req/s ({row.hits / max(lookups, 1):.1%} hits)")
        if lookups and row.loads / lookups <= 0.01:
            break
    return runs


def cache_lookups(url: str, meter: CpuMeter) -> tuple[int, int]:
    """(hits, loads) of the decision's fact cache (`access`) summed over every gunicorn worker
    (bench/caches of the server of `url` answers for the worker that took the connection: asked
    until each has answered)."""
    import requests

    url = "http://" + urlsplit(url).netloc

    workers = {process.pid for process in meter.roots["gunicorn"].children()}
    seen: dict[int, tuple[int, int]] = {}
    for _ in range(200):
        response = requests.get(f"{url}/bench/caches", timeout=10, headers={"Connection": "close"})
        if response.status_code != 200:
            raise SystemExit(f"bench/caches answered {response.status_code}: {response.text[:500]}")
        answer = response.json()
        seen[answer["pid"]] = tuple(answer["lookups"].get(STRUCTURE_TAG, (0, 0)))
        if workers <= set(seen):
            break
    return sum(hits for hits, _ in seen.values()), sum(loads for _, loads in seen.values())


def measured(label: str, url: str, script: Path, run: dict, meter: CpuMeter, note: str = "") -> Row:
    before = cache_lookups(url, meter)
    result = wrk(url, script=script, cpu=meter, **run)
    after = cache_lookups(url, meter)
    return Row(label, result, note, hits=after[0] - before[0], loads=after[1] - before[1])


def measure_round(url: str, *, args, one_car, many_cars, grant_ids: list[int], meter: CpuMeter) -> list[Row]:
    """One round of every row."""
    run = {"connections": args.connections, "duration_s": args.duration}
    decisions = f"{url}/partner/v1/access-decisions"
    rows = [measured("bare Django JSON view", f"{url}/bench/bare", many_cars, run, meter)]
    rows += [measured(label, f"{url}/bench/floor?steps={steps}", many_cars, run, meter) for steps, label in FLOORS]
    rows.append(measured(FOLDED, f"{url}/bench/floor?steps=counters,folded", many_cars, run, meter))
    rows.append(measured(ONE_CAR, decisions, one_car, run, meter))
    warmups = warm_up(decisions, many_cars, run, args.warmups, meter)
    rows.append(measured(MANY_CARS, decisions, many_cars, run, meter, "warm-up runs " + ", ".join(warmups)))
    for per_s, label in [(args.writes, f"many cars, {args.writes:g} grant changes/s"),
                         (SLOW_WRITES_PER_S, "many cars, one grant change every 5 s")]:
        before = _suspended_decisions()
        with GrantWriter(grant_ids, per_s) as writer:
            row = measured(label, decisions, many_cars, run, meter)
        row.note = f"{writer.summary()}; {_suspended_decisions() - before} decisions saw a suspended grant"
        rows.append(row)
    with durable_commits():
        rows.append(measured(DURABLE_AUDIT, f"{url}/bench/floor?steps=audit", many_cars, run, meter))
        rows.append(measured(DURABLE_ONE_CAR, decisions, one_car, run, meter))
    return rows


def _cpu_us(row: Row, group: str) -> float:
    return row.result.cpu_s[group] / max(row.result.requests, 1) * 1e6


def report(rows: list[Row], round_number: int) -> None:
    by_label = {row.label: row for row in rows}
    bare = rows[0].result.requests_per_s
    quiet = by_label[MANY_CARS].result.requests_per_s
    print(f"\nround {round_number} ({_load()})")
    print(f"| {'load':<50} | {'req/s':>7} | {'p50 ms':>7} | {'p99 ms':>7} | ratio to bare | to no writes |")
    print(f"|{'-' * 52}|{'-' * 9}|{'-' * 9}|{'-' * 9}|{'-' * 15}|{'-' * 14}|")
    for row in rows:
        result = row.result
        churn = f"{result.requests_per_s / quiet:.2f}" if "grant change" in row.label else ""
        print(f"| {row.label:<50} | {result.requests_per_s:>7.0f} | {result.p50_ms:>7.1f} | {result.p99_ms:>7.1f} | "
              f"{result.requests_per_s / bare:>13.2f} | {churn:>12} |")
    for row in rows:
        if row.note:
            print(f"{row.label}: {row.note}")
    errors = {row.label: row.result.errors for row in rows if row.result.errors}
    print(f"errors / non-2xx: {errors or 'none'}")
    what_holds_it_back(rows)


def what_holds_it_back(rows: list[Row]) -> None:
    """Where each request's CPU goes, by process (same runs as the table above)."""
    by_label = {row.label: row for row in rows}
    cores = os.cpu_count() or 1
    print("\nwhat holds it back - CPU per request by process, same runs (µs; wrk's own included; "
          f"a run can at most reach {cores} cores / total):")
    print(f"| {'load':<50} | {'gunicorn':>8} | {'Postgres':>8} | {'Redis':>6} | {'wrk':>5} | {'total':>6} | "
          f"{'ceiling req/s':>13} | {'measured':>8} | {'facts loaded / request':>22} |")
    print(f"|{'-' * 52}|{'-' * 10}|{'-' * 10}|{'-' * 8}|{'-' * 7}|{'-' * 8}|{'-' * 15}|{'-' * 10}|{'-' * 24}|")
    for row in rows:
        cpu = [_cpu_us(row, group) for group in GROUPS]
        total = sum(cpu)
        lookups = row.hits + row.loads
        loaded = f"{row.loads / max(row.result.requests, 1):.3f} ({row.hits / lookups:.1%} hits)" if lookups else "-"
        print(f"| {row.label:<50} | {cpu[0]:>8.0f} | {cpu[1]:>8.0f} | {cpu[2]:>6.0f} | {cpu[3]:>5.0f} | "
              f"{total:>6.0f} | {cores * 1e6 / total:>13.0f} | {row.result.requests_per_s:>8.0f} | {loaded:>22} |")

    def added(label: str, base: str) -> str:
        extra = [_cpu_us(by_label[label], group) - _cpu_us(by_label[base], group) for group in GROUPS]
        parts = ", ".join(f"{group} {value:+.0f}" for group, value in zip(GROUPS, extra, strict=True))
        return f"{sum(extra):+.0f} µs ({parts})"

    print("\nCPU each step adds per request (µs):")
    for label, base in [("bare + data-version read", BARE), ("bare + Redis counters", BARE),
                        ("bare + audit INSERT", BARE), ("bare + all three (floor)", BARE),
                        (FOLDED, "bare + all three (floor)"), (ONE_CAR, "bare + all three (floor)"),
                        (MANY_CARS, ONE_CAR), (DURABLE_AUDIT, "bare + audit INSERT"), (DURABLE_ONE_CAR, ONE_CAR)]:
        print(f"- {label} (against {base}): {added(label, base)}")
    durable, fast = by_label[DURABLE_AUDIT].result, by_label["bare + audit INSERT"].result
    print(f"- durable commits (not this bench's default; production's): the audit INSERT row goes from "
          f"{fast.requests_per_s:.0f} to {durable.requests_per_s:.0f} req/s, p50 {fast.p50_ms:.1f} -> "
          f"{durable.p50_ms:.1f} ms: the commit's wait for the WAL flush. Waiting for it is the guarantee "
          f"(audited before answered); `synchronous_commit = off` would drop it and is not adopted.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--residents", type=int, default=2000)
    parser.add_argument("--buildings", type=int, default=40)
    parser.add_argument("--writes", type=float, default=2.0, help="grant changes per second in the churn run")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=1, help="measure every row this many times")
    parser.add_argument("--warmups", type=int, default=8, help="at most this many warm-up runs before many cars")
    args = parser.parse_args()

    from partners.devcerts import generate_dev_pki

    work = Path(tempfile.mkdtemp(prefix="smarthome-bench-decisions-scale-"))
    pki = generate_dev_pki(work / "pki")
    print(f"access decisions at scale ({args.residents} residents with a car in {args.buildings} buildings; gunicorn "
          f"{args.workers} sync workers, production settings, PostgreSQL + Redis, wrk {args.connections} connections "
          f"x {args.duration} s, {os.cpu_count()} cores; {_load()})", flush=True)
    with own_servers() as (database_url, redis_url):
        env = production_env(database_url, redis_url, proxy_secret=PROXY_SECRET)
        manage("migrate", "--noinput", env=env)
        os.environ.update(env)
        import django

        django.setup()
        started = time.monotonic()
        body, client = seed(pki)
        bodies, grant_ids = seed_complex(residents=args.residents, buildings=args.buildings)
        print(f"seeded in {time.monotonic() - started:.0f} s", flush=True)
        bodies_file = work / "bodies.jsonl"
        bodies_file.write_text("".join(json.dumps(item) + "\n" for item in bodies))
        cert_header = quote(pki["partner-client.pem"].read_text())
        with gunicorn(env, workers=args.workers, app="smarthome.wsgi_partner") as url:  # the partner pool
            one_car, many_cars = work / "one-car.lua", work / "many-cars.lua"
            meter = CpuMeter({"gunicorn": urlsplit(url).port, "PostgreSQL": urlsplit(database_url).port,
                              "Redis": urlsplit(redis_url).port})
            for round_number in range(1, args.rounds + 1):
                token = fetch_token(url, client, cert_header)  # a round outlasts a token's lifetime
                headers = {"authorization": lua_string(f"Bearer {token}"), "cert": lua_string(cert_header),
                           "ip": PARTNER_IP, "proxy_secret": PROXY_SECRET}
                one_car.write_text(LUA.format(body=lua_string(json.dumps(body)), **headers))
                many_cars.write_text(MANY_CARS_LUA.format(bodies_file=lua_string(str(bodies_file)), **headers))
                check_answers(url, token, cert_header, [body, *random.sample(bodies, 3)])
                rows = measure_round(url, args=args, one_car=one_car, many_cars=many_cars, grant_ids=grant_ids,
                                     meter=meter)
                report(rows, round_number)



if __name__ == "__main__":
    main()
