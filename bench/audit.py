"""Audit log benchmark: seal, verify and export N events (default 1,000,000) in PostgreSQL.

    .venv/bin/python bench/audit.py [--events N]      # own PostgreSQL, or DATABASE_URL if set

Prints, each against a baseline measured in the same run on the same rows:
- export throughput (rows/s) relative to PostgreSQL's own `COPY (SELECT ...) TO STDOUT (FORMAT csv)`
  (target >= 0.5), full and filtered to one company, CSV and JSONL;
- peak memory of the export, measured in a fresh child process (target < 150 MB);
- seal and verify throughput relative to raw hashlib.sha256 over the same leaf bytes.
"""

import argparse
import datetime
import hashlib
import json
import os
import resource
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.harness import PRODUCTION_ENV, base_env, own_servers  # noqa: E402

ACTIONS = ["partner.open", "access.decision", "resident.open", "partner.allowlist_delta", "consent.give"]
OUTCOMES = ["success", "success", "success", "denied", "failure", "timeout"]


def seed(database_url: str, events: int) -> float:
    """COPY `events` plausible rows into audit_event; returns seconds."""
    import psycopg

    start = time.perf_counter()
    base = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    with psycopg.connect(database_url) as conn, conn.cursor() as cur:
        with cur.copy(
            "COPY audit_event (id, occurred_at, actor_kind, actor_ref, action, outcome, object_type, object_ref, "
            "partner_id, company_id, building_id, device_ref, reason, request_id, source_ip, latency_ms, "
            "http_status) FROM STDIN"
        ) as copy:
            for i in range(1, events + 1):
                copy.write_row((
                    i, base + datetime.timedelta(microseconds=i * 30_011), "partner" if i % 3 else "resident",
                    f"subject:{i * 7919 % 1_000_003:020x}", ACTIONS[i % 5], OUTCOMES[i % 6], "device",
                    f"dev-{i % 5000}", 1 + i % 20, 1 + i % 20, 1 + i % 400, f"gate-{i % 5000}",
                    "no_grant" if i % 6 == 3 else "", f"req-{i:012x}", f"10.{i % 250}.{i % 200}.{i % 100}",
                    f"{(i % 9000) / 7:.3f}", 200,
                ))
        cur.execute("SELECT setval('audit_event_id_seq', %s)", [events])
        cur.execute("ANALYZE audit_event")
    return time.perf_counter() - start


def hash_baseline(limit_rows: int) -> float:
    """Seconds for raw hashlib.sha256 over every leaf's bytes (the bytes built outside the timing)."""
    from django.db import connection

    from audit.canonical import leaf_bytes, sql_columns

    total = 0.0
    sha256 = hashlib.sha256
    with connection.chunked_cursor() as cursor:
        cursor.execute(f"SELECT {sql_columns('e')} FROM audit_event e ORDER BY e.id LIMIT %s",  # noqa: S608
                       [limit_rows])
        while rows := cursor.fetchmany(100_000):
            data = [b"\x00" + leaf_bytes(row) for row in rows]
            start = time.perf_counter()
            for item in data:
                sha256(item).digest()
            total += time.perf_counter() - start
    return total


def copy_baseline(where: str = "") -> tuple[float, int]:
    from django.db import connection

    from audit.canonical import sql_columns

    sql = (f"COPY (SELECT l.position, {sql_columns('e')} FROM audit_leaf l JOIN audit_event e "  # noqa: S608
           f"ON e.id = l.event_id {where} ORDER BY l.position) TO STDOUT (FORMAT csv)")
    start = time.perf_counter()
    rows = 0
    with connection.cursor() as cursor, cursor.copy(sql) as copy:
        for block in copy:
            rows += bytes(block).count(b"\n")
    return time.perf_counter() - start, rows


def run_export(fmt: str, company: int | None) -> tuple[float, int, int]:
    from audit.export import export_stream
    from audit.selectors import EventFilter, checkpoint_latest

    event_filter = EventFilter(company_ids=None if company is None else frozenset({company}))
    start = time.perf_counter()
    size = 0
    lines = 0
    for block in export_stream(event_filter=event_filter, fmt=fmt, checkpoint=checkpoint_latest()):
        size += len(block)
        lines += block.count(b"\n")
    return time.perf_counter() - start, size, lines


def high_water_mb() -> float:
    """Peak RSS of this process image (VmHWM; unlike ru_maxrss it is not inherited from the parent)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure_export_memory() -> None:
    """Child process: peak memory of one full CSV export (RSS growth and traced Python peak)."""
    import django

    django.setup()
    from django.db import connection

    connection.ensure_connection()
    from audit import export, verification  # noqa: F401 - imports before the baseline RSS

    rss_before = high_water_mb()
    run_export("csv", None)
    run_export("csv", 3)
    rss_after = high_water_mb()
    tracemalloc.start()
    run_export("csv", 3)
    _, traced_filtered = tracemalloc.get_traced_memory()
    tracemalloc.reset_peak()
    run_export("csv", None)
    _, traced_full = tracemalloc.get_traced_memory()
    print(json.dumps({"rss_growth_mb": rss_after - rss_before, "rss_mb": rss_after,
                      "traced_full_mb": traced_full / 2**20, "traced_filtered_mb": traced_filtered / 2**20}))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--measure-export-memory", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure_export_memory:
        measure_export_memory()
        return
    if os.environ.get("DATABASE_URL"):
        bench(os.environ["DATABASE_URL"], args.events)
    else:
        with own_servers() as (database_url, _redis_url):
            bench(database_url, args.events)


def bench(database_url: str, events: int) -> None:
    env = base_env(DATABASE_URL=database_url, DJANGO_SETTINGS_MODULE="smarthome.settings.production",
                   **PRODUCTION_ENV, AUDIT_SIGNING_KEY="", CELERY_TASK_ALWAYS_EAGER="true")
    os.environ.update(env)
    # the bench signs with a throwaway development key
    os.environ["DJANGO_SETTINGS_MODULE"] = "smarthome.settings"
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0)
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM audit_event")
        existing = cursor.fetchone()[0]
    if existing:
        raise SystemExit("the database already holds audit events: give an empty one")
    print(f"seeding {events:,} events ...", flush=True)
    seed_s = seed(database_url.replace("postgres://", "postgresql://"), events)

    from audit.sealing import audit_seal_pending
    from audit.verification import verify_log

    start = time.perf_counter()
    sealed = audit_seal_pending(max_rounds=10**6)
    seal_s = time.perf_counter() - start
    assert sealed == events
    hash_s = hash_baseline(events)
    start = time.perf_counter()
    report = verify_log()
    verify_s = time.perf_counter() - start
    assert report.ok, report.problems
    assert report.leaves == events

    results = []
    copy_s, copy_rows = copy_baseline()
    for fmt in ("csv", "jsonl"):
        export_s, size, lines = run_export(fmt, None)
        results.append((f"export {fmt}, all rows", lines - 1 - (fmt == "csv"), export_s, copy_rows, copy_s, size))
    fcopy_s, fcopy_rows = copy_baseline("WHERE e.company_id = 3")
    export_s, size, lines = run_export("csv", 3)
    results.append(("export csv, one company (5%)", lines - 2, export_s, fcopy_rows, fcopy_s, size))

    child = subprocess.run([sys.executable, __file__, "--measure-export-memory"], env=os.environ.copy(),
                           capture_output=True, text=True, check=True, cwd=ROOT)
    memory = json.loads(child.stdout.strip().splitlines()[-1])

    rate = events / hash_s
    print()
    print(f"audit bench: {events:,} events in PostgreSQL (seeded by COPY in {seed_s:.1f} s)")
    print(f"{'operation':<32}{'rows':>11}{'seconds':>10}{'rows/s':>12}{'baseline rows/s':>17}{'ratio':>8}  target")
    for name, rows, secs, base_rows, base_s, size in results:
        assert rows == base_rows, (name, rows, base_rows)
        print(f"{name:<32}{rows:>11,}{secs:>10.2f}{rows / secs:>12,.0f}{base_rows / base_s:>17,.0f}"
              f"{(base_s / secs):>8.2f}  >= 0.5 vs COPY csv ({size / 2**20:.0f} MB)")
    print(f"{'seal (hash, tree, COPY leaves, sign)':<32}{events:>11,}{seal_s:>10.2f}{events / seal_s:>12,.0f}"
          f"{rate:>17,.0f}{(hash_s / seal_s):>8.3f}  vs raw sha256 of the leaves")
    print(f"{'verify_audit (whole log)':<32}{events:>11,}{verify_s:>10.2f}{events / verify_s:>12,.0f}"
          f"{rate:>17,.0f}{(hash_s / verify_s):>8.3f}  vs raw sha256 of the leaves")
    print(f"export peak memory (fresh process, full + one-company CSV): RSS growth {memory['rss_growth_mb']:.1f} MB "
          f"(process RSS {memory['rss_mb']:.0f} MB), traced Python peak {memory['traced_full_mb']:.1f} MB "
          f"full / {memory['traced_filtered_mb']:.1f} MB one company  (target < 150 MB)")


if __name__ == "__main__":
    main()
