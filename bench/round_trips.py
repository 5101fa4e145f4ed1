"""What each round trip of a partner decision costs the worker, one call at a time.

    .venv/bin/python bench/round_trips.py [--calls 2000] [--rounds 3]

Own PostgreSQL and Redis, production settings, one process (no HTTP, no wrk): each of the three
round trips every decision makes, called by the very functions the decision uses (as bench/urls.py's
floor), `--calls` times, interleaved round by round so that a busy machine weighs on every variant
alike. Prints per call the wall time and this process's CPU time (what a gunicorn worker spends;
under load the wall time is mostly waiting for a core), the median of the rounds:

- the data-version read (`access_data.current_version`: the change-log read), prepared on the
  server and not (DATABASE_PREPARED_STATEMENTS);
- the rate-limit and anomaly counters (`access.anomalies.decision_admit`: one Lua script call);
- the audit INSERT (`audit.services.record`), prepared and not;
- the version read and the audit INSERT as the decision makes them (two statements) against both in
  one statement (bench/urls.py `folded_audit`: inserted only while the change counter is the one
  this process last read) - the round trip a fold would save.
"""

import argparse
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.decisions import PROXY_SECRET  # noqa: E402
from bench.harness import manage, own_servers, production_env  # noqa: E402


def _version():
    from access.policy import access_data

    access_data.current_version()


def _counters():
    from access.anomalies import decision_admit

    decision_admit(partner_id=1, device_ref="gate-1", denied=False, resident_id=1)


def _audit():
    from audit.actions import Action, ActorKind, Outcome
    from audit.services import record

    record(action=Action.ACCESS_DECISION, outcome=Outcome.SUCCESS, actor_kind=ActorKind.PARTNER,
           actor_ref="bench:round-trips", object_type="access_decision", object_ref=f"decision:{uuid.uuid4().hex}",
           partner_id=1, company_id=1, building_id=1, device_ref="gate-1", reason="granted",
           source_ip="203.0.113.7", latency_ms=1.0)


def _version_and_audit():
    _version()
    _audit()


def _folded():
    from bench.urls import folded_audit
    from core.cache.versioned import request_snapshot

    with request_snapshot():  # as in a request: the batch this process read last is assumed
        folded_audit()


def _prepared(on: bool) -> None:
    """Prepared statements on or off for the next statements (a new connection either way)."""
    from django.db import connection

    options = connection.settings_dict["OPTIONS"]
    if on:
        options["prepare_threshold"] = 2**31 - 1
    else:
        options.pop("prepare_threshold", None)
    connection.close()


VARIANTS = [
    ("data-version read, prepared", True, _version),
    ("data-version read, not prepared", False, _version),
    ("Redis counters (one script call)", True, _counters),
    ("audit INSERT, prepared", True, _audit),
    ("audit INSERT, not prepared", False, _audit),
    ("version read + audit INSERT (before)", True, _version_and_audit),
    ("both in one statement (now: folded)", True, _folded),
]


def measure(call, prepared: bool, calls: int) -> tuple[float, float]:
    """(wall µs, CPU µs) per call, after a few calls to warm the connection."""
    _prepared(prepared)
    for _ in range(20):
        call()
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(calls):
        call()
    return (time.perf_counter() - wall) / calls * 1e6, (time.process_time() - cpu) / calls * 1e6


SERVER_PARTS = [  # (label, what `CREATE TABLE ... (LIKE audit_event ...)` takes over)
    ("heap row only (no hash, checks, indexes)", "INCLUDING DEFAULTS INCLUDING IDENTITY"),
    ("+ the generated leaf hash", "INCLUDING DEFAULTS INCLUDING IDENTITY INCLUDING GENERATED"),
    ("+ CHECK constraints", "INCLUDING DEFAULTS INCLUDING IDENTITY INCLUDING GENERATED INCLUDING CONSTRAINTS"),
    ("+ indexes (= audit_event)", "INCLUDING ALL"),
]


def inside_postgres(rows: int) -> list[tuple[str, float]]:
    """µs per audit row inside the server: `rows` single-row INSERTs (a copy of one event) in a
    PL/pgSQL loop into tables built like audit_event part by part, then into audit_event itself with
    a commit per row (a procedure). Same server, same row; the loop's own cost (reading the row) is
    measured alone and taken off."""
    from django.db import connection

    from audit.services import _INSERT_FIELDS

    _audit()
    with connection.cursor() as cursor:
        cursor.execute("SELECT max(id) FROM audit_event")
        source = cursor.fetchone()[0]
        columns = ", ".join(field.column for field in _INSERT_FIELDS)
        row = f"SELECT {columns} FROM audit_event WHERE id = {source}"  # noqa: S608 - identifiers and an id of ours
        results, tables = [], []
        cursor.execute(
            "CREATE OR REPLACE FUNCTION pg_temp.bench_read(n int) RETURNS float LANGUAGE plpgsql AS $$ "
            "DECLARE started timestamptz := clock_timestamp(); BEGIN FOR i IN 1..n LOOP "
            f"PERFORM * FROM ({row}) r; END LOOP; "
            "RETURN extract(epoch FROM clock_timestamp() - started); END $$")
        cursor.execute("SELECT pg_temp.bench_read(%s)", [rows])
        reading = cursor.fetchone()[0]
        for n, (label, like) in enumerate(SERVER_PARTS):
            table = f"bench_audit_part{n}"
            tables.append(table)
            cursor.execute(f"DROP TABLE IF EXISTS {table}")
            cursor.execute(f"CREATE TABLE {table} (LIKE audit_event {like})")
            cursor.execute(
                f"CREATE OR REPLACE FUNCTION pg_temp.bench_{table}(n int) RETURNS float LANGUAGE plpgsql AS $$ "
                "DECLARE started timestamptz := clock_timestamp(); BEGIN FOR i IN 1..n LOOP "
                f"INSERT INTO {table} ({columns}) {row}; END LOOP; "
                "RETURN extract(epoch FROM clock_timestamp() - started); END $$")
            cursor.execute(f"SELECT pg_temp.bench_{table}(%s)", [rows])
            results.append((label, (cursor.fetchone()[0] - reading) / rows * 1e6))
        cursor.execute(
            "CREATE OR REPLACE PROCEDURE bench_audit_committed(n int, INOUT seconds float) LANGUAGE plpgsql AS $$ "
            "DECLARE started timestamptz := clock_timestamp(); BEGIN FOR i IN 1..n LOOP "
            f"INSERT INTO audit_event ({columns}) {row}; COMMIT; END LOOP; "
            "seconds := extract(epoch FROM clock_timestamp() - started); END $$")
        cursor.execute("CALL bench_audit_committed(%s, NULL)", [rows])
        results.append(("audit_event, a commit per row", (cursor.fetchone()[0] - reading) / rows * 1e6))
        for table in tables:
            cursor.execute(f"DROP TABLE {table}")
        cursor.execute("DROP PROCEDURE bench_audit_committed(int, float)")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    with own_servers() as (database_url, redis_url):
        env = production_env(database_url, redis_url, proxy_secret=PROXY_SECRET)
        manage("migrate", "--noinput", env=env)
        os.environ.update(env)
        import django

        django.setup()
        results = {label: [] for label, _, _ in VARIANTS}
        load_before = os.getloadavg()
        for _ in range(args.rounds):
            for label, prepared, call in VARIANTS:
                results[label].append(measure(call, prepared, args.calls))
        server = inside_postgres(args.calls)
        load_after = os.getloadavg()

    print(f"round trips of a decision, one process, {args.calls} calls x {args.rounds} rounds (median), "
          f"{os.cpu_count()} cores; load average {load_before[0]:.2f} before, {load_after[0]:.2f} after")
    print(f"| {'round trip':<38} | {'wall µs/call':>12} | {'CPU µs/call':>11} |")
    print(f"|{'-' * 40}|{'-' * 14}|{'-' * 13}|")
    for label, values in results.items():
        print(f"| {label:<38} | {statistics.median(w for w, _ in values):>12.0f} | "
              f"{statistics.median(c for _, c in values):>11.0f} |")
    print(f"\none audit row inside PostgreSQL (a PL/pgSQL loop of {args.calls} single-row INSERTs, no client; "
          "each part adds to the one above):")
    print(f"| {'table built like audit_event with':<45} | {'µs/row':>7} |")
    print(f"|{'-' * 47}|{'-' * 9}|")
    for label, micros in server:
        print(f"| {label:<45} | {micros:>7.1f} |")


if __name__ == "__main__":
    main()
