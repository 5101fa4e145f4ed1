"""Audit log benchmark: seal, verify, export and reconcile N events (default 1,000,000) in 50 companies.

    .venv/bin/python bench/audit.py [--events N] [--companies 50]   # own PostgreSQL, or DATABASE_URL if set

Prints, each against a baseline measured in the same run on the same rows:
- seal throughput (events/s) relative to a pure-Python hashlib RFC 6962 tree built over the
  same leaves (leaf hashes, then node hashes level by level; the leaf bytes built outside the
  timing) - target >= 0.5;
- export throughput (rows/s) relative to PostgreSQL's own `COPY (SELECT <the same canonical
  columns> ...) TO STDOUT (FORMAT csv)` of the same rows - target >= 0.5: every event in CSV and
  in JSONL, and one company's events (its whole log, completeness proof included);
- peak memory of the exports, in a fresh child process (target < 150 MB);
- reconciliation of our N partner-call events against a partner log of N entries with 0.1 %
  differences, in a fresh child process: seconds and peak memory (targets < 60 s, < 300 MB);
- `verify_audit` of everything, for reference.
"""

import argparse
import datetime
import hashlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.harness import PRODUCTION_ENV, base_env, own_servers  # noqa: E402

ACTIONS = ["partner.open", "partner.webrtc_session", "partner.face_enrol", "partner.face_delete",
           "partner.allowlist_full", "partner.allowlist_delta"]
OUTCOMES = ["success", "success", "success", "denied", "failure", "success"]
OPERATIONS = {"partner.open": "device.open", "partner.webrtc_session": "device.webrtc_session",
              "partner.face_enrol": "face.enrol", "partner.face_delete": "face.delete",
              "partner.allowlist_full": "allowlist.replace", "partner.allowlist_delta": "allowlist.patch"}
RESULTS = {"success": "ok", "denied": "denied", "failure": "rejected"}
BASE = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
STEP_US = 30_011
ONE_COMPANY = 3


def seed(database_url: str, events: int, companies: int) -> float:
    """COPY `events` plausible partner-call rows into audit_event; returns seconds."""
    import psycopg

    start = time.perf_counter()
    with psycopg.connect(database_url) as conn, conn.cursor() as cur:
        with cur.copy(
            "COPY audit_event (id, occurred_at, actor_kind, actor_ref, action, outcome, object_type, object_ref, "
            "partner_id, company_id, building_id, device_ref, reason, request_id, source_ip, latency_ms, "
            "http_status, origin_request_id) FROM STDIN"
        ) as copy:
            for i in range(1, events + 1):
                copy.write_row((
                    i, BASE + datetime.timedelta(microseconds=i * STEP_US), "resident" if i % 3 else "system",
                    f"user:{i * 7919 % 1_000_003:020x}", ACTIONS[i % 6], OUTCOMES[i % 6], "device",
                    f"dev-{i % 5000}", 1 + i % 4, 1 + i % companies, 1 + i % 400, f"gate-{i % 5000}",
                    "partner_rejected" if i % 6 == 4 else "", f"req-{i:012x}", f"10.{i % 250}.{i % 200}.{i % 100}",
                    f"{(i % 9000) / 7:.3f}", 409 if i % 6 == 4 else 200, f"app-{i:012x}" if i % 3 else "",
                ))
        cur.execute("SELECT setval('audit_event_id_seq', %s)", [events])
        cur.execute("ANALYZE audit_event")
    return time.perf_counter() - start


def tree_baseline(events: int) -> float:
    """Seconds for a pure-Python hashlib RFC 6962 tree over the events' leaves: SHA-256(0x00||leaf)
    of each, then SHA-256(0x01||left||right) level by level (the leaf bytes built outside the timing)."""
    from django.db import connection

    from audit.canonical import sql_leaf_text

    sha256 = hashlib.sha256
    total, hashes = 0.0, []
    with connection.chunked_cursor() as cursor:
        cursor.execute(f"SELECT {sql_leaf_text('e')} FROM audit_event e ORDER BY e.id LIMIT %s", [events])  # noqa: S608
        while rows := cursor.fetchmany(100_000):
            data = [b"\x00" + row[0].encode("ascii") for row in rows]
            start = time.perf_counter()
            hashes.extend([sha256(item).digest() for item in data])
            total += time.perf_counter() - start
    start = time.perf_counter()
    nodes = hashes
    while len(nodes) > 1:
        paired = [sha256(b"\x01" + nodes[i] + nodes[i + 1]).digest() for i in range(0, len(nodes) - 1, 2)]
        nodes = [*paired, nodes[-1]] if len(nodes) & 1 else paired
    return total + time.perf_counter() - start


def copy_baseline(where: str = "") -> tuple[float, int]:
    from django.db import connection

    from audit.canonical import sql_columns

    sql = f"COPY (SELECT {sql_columns('e')} FROM audit_event e {where} ORDER BY e.id) TO STDOUT (FORMAT csv)"  # noqa: S608
    start = time.perf_counter()
    rows = 0
    with connection.cursor() as cursor, cursor.copy(sql) as copy:
        for block in copy:
            rows += bytes(block).count(b"\n")
    return time.perf_counter() - start, rows


def run_export(fmt: str, company: int | None) -> tuple[float, int, int]:
    from audit.export import export_plan, export_stream
    from audit.selectors import EventFilter

    start = time.perf_counter()
    plan = export_plan(EventFilter(company_ids=None if company is None else frozenset({company})))
    size = lines = 0
    for block in export_stream(plan=plan, fmt=fmt):
        size += len(block)
        lines += block.count(b"\n")
    return time.perf_counter() - start, size, lines - 1 - (fmt == "csv")  # less the trailer (and header)


def high_water_mb() -> float:
    """Peak RSS of this process image (VmHWM; unlike ru_maxrss it is not inherited from the parent)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure_export_memory() -> None:
    """Child process: peak memory of full and one-company exports (RSS growth and traced Python peak)."""
    import django

    django.setup()
    from django.db import connection

    connection.ensure_connection()
    from audit import export, verification  # noqa: F401 - imports before the baseline RSS

    rss_before = high_water_mb()
    run_export("jsonl", None)
    run_export("csv", ONE_COMPANY)
    rss_after = high_water_mb()
    tracemalloc.start()
    run_export("csv", ONE_COMPANY)
    _, traced_filtered = tracemalloc.get_traced_memory()
    tracemalloc.reset_peak()
    run_export("csv", None)
    _, traced_full = tracemalloc.get_traced_memory()
    print(json.dumps({"rss_growth_mb": rss_after - rss_before, "rss_mb": rss_after,
                      "traced_full_mb": traced_full / 2**20, "traced_filtered_mb": traced_filtered / 2**20}))


def write_partner_log(path: Path, events: int) -> dict[str, int]:
    """The partner's log of our calls, with 0.1 % differences: some calls missing there, some calls
    only there, some with another result. Returns the differences planted."""
    from django.db import connection

    planted = {"missing_at_partner": 0, "missing_here": 0, "outcome_mismatch": 0}
    with path.open("w") as out, connection.chunked_cursor() as cursor:
        cursor.execute("SELECT id, request_id, action, outcome, occurred_at, http_status FROM audit_event "
                       "ORDER BY id LIMIT %s", [events])
        while rows := cursor.fetchmany(50_000):
            for event_id, request_id, action, outcome, at, status in rows:
                if event_id % 2500 == 0:
                    planted["missing_at_partner"] += 1
                    continue
                result = RESULTS[outcome]
                if event_id % 2500 == 1:
                    result = "denied" if result != "denied" else "ok"
                    planted["outcome_mismatch"] += 1
                out.write(json.dumps({"request_id": request_id, "operation": OPERATIONS[action], "result": result,
                                      "http_status": status, "at": at.isoformat()}) + "\n")
                if event_id % 2500 == 2:
                    planted["missing_here"] += 1
                    out.write(json.dumps({"request_id": f"theirs-{event_id}", "operation": "device.open",
                                          "result": "opened", "http_status": 200, "at": at.isoformat()}) + "\n")
    return planted


def measure_reconcile(path: str, events: int) -> None:
    """Child process: reconcile our events with the partner's log file; time and peak memory."""
    import django

    django.setup()
    from django.db import connection

    connection.ensure_connection()
    from audit.reconcile import audit_reconcile, partner_entries_from_lines

    rss_before = high_water_mb()
    since = BASE
    until = BASE + datetime.timedelta(microseconds=(events + 1) * STEP_US)
    start = time.perf_counter()
    with open(path, encoding="utf-8") as lines:
        report = audit_reconcile(partner_entries=partner_entries_from_lines(lines, name=path), partner_id=None,
                                 since=since, until=until, skew_threshold_s=5)
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "rss_mb": high_water_mb(), "rss_before_mb": rss_before,
                      **report.summary()}))


def child(flag: str, *args: str) -> dict:
    result = subprocess.run([sys.executable, __file__, flag, *args], env=os.environ.copy(), capture_output=True,
                            text=True, check=True, cwd=ROOT)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--companies", type=int, default=50)
    parser.add_argument("--measure-export-memory", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--measure-reconcile", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure_export_memory:
        measure_export_memory()
        return
    if args.measure_reconcile:
        measure_reconcile(args.measure_reconcile[0], int(args.measure_reconcile[1]))
        return
    if os.environ.get("DATABASE_URL"):
        bench(os.environ["DATABASE_URL"], args.events, args.companies)
    else:
        with own_servers() as (database_url, _redis_url):
            bench(database_url, args.events, args.companies)


def bench(database_url: str, events: int, companies: int) -> None:
    env = base_env(DATABASE_URL=database_url, **PRODUCTION_ENV, AUDIT_SIGNING_KEY="", CELERY_TASK_ALWAYS_EAGER="true")
    os.environ.update(env)
    os.environ["DJANGO_SETTINGS_MODULE"] = "smarthome.settings"  # the bench signs with a throwaway development key
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0)
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM audit_event")
        if cursor.fetchone()[0]:
            raise SystemExit("the database already holds audit events: give an empty one")
    print(f"seeding {events:,} events in {companies} companies ...", flush=True)
    seed_s = seed(database_url.replace("postgres://", "postgresql://"), events, companies)

    from audit.sealing import audit_seal_pending
    from audit.verification import verify_log

    start = time.perf_counter()
    sealed = audit_seal_pending(max_rounds=10**6)
    seal_s = time.perf_counter() - start
    assert sealed == events, sealed
    tree_s = tree_baseline(events)
    start = time.perf_counter()
    report = verify_log()
    verify_s = time.perf_counter() - start
    assert report.ok, report.problems
    assert report.leaves == events

    results = []
    copy_s, copy_rows = copy_baseline()
    for fmt in ("csv", "jsonl"):
        export_s, size, rows = run_export(fmt, None)
        results.append((f"export {fmt}, all events", rows, export_s, copy_rows, copy_s, size))
    one_copy_s, one_copy_rows = copy_baseline(f"WHERE e.company_id = {ONE_COMPANY}")
    for fmt in ("csv", "jsonl"):
        export_s, size, rows = run_export(fmt, ONE_COMPANY)
        results.append((f"export {fmt}, one company ({100 / companies:.0f}%)", rows, export_s, one_copy_rows,
                        one_copy_s, size))
    memory = child("--measure-export-memory")

    with tempfile.TemporaryDirectory() as work:
        partner_log = Path(work) / "partner-audit.jsonl"
        planted = write_partner_log(partner_log, events)
        reconciled = child("--measure-reconcile", str(partner_log), str(events))

    print()
    print(f"audit bench: {events:,} events in {companies} companies, PostgreSQL (seeded by COPY in {seed_s:.1f} s)")
    print(f"{'operation':<34}{'rows':>11}{'seconds':>10}{'rows/s':>12}{'baseline rows/s':>17}{'ratio':>8}  target")
    for name, rows, secs, base_rows, base_s, size in results:
        assert rows == base_rows, (name, rows, base_rows)
        print(f"{name:<34}{rows:>11,}{secs:>10.2f}{rows / secs:>12,.0f}{base_rows / base_s:>17,.0f}"
              f"{(base_s / secs):>8.2f}  >= 0.5 vs COPY csv of the same rows ({size / 2**20:.0f} MB)")
    print(f"{'seal (stream leaves, trees, sign)':<34}{events:>11,}{seal_s:>10.2f}{events / seal_s:>12,.0f}"
          f"{events / tree_s:>17,.0f}{(tree_s / seal_s):>8.2f}  >= 0.5 vs pure-Python hashlib RFC 6962 tree")
    print(f"{'verify_audit (everything)':<34}{events:>11,}{verify_s:>10.2f}{events / verify_s:>12,.0f}"
          f"{events / tree_s:>17,.0f}{(tree_s / verify_s):>8.2f}  (reference) vs the same tree")
    print(f"export peak memory (fresh process, all-events JSONL + one-company CSV): RSS growth "
          f"{memory['rss_growth_mb']:.1f} MB (process RSS {memory['rss_mb']:.0f} MB), traced Python peak "
          f"{memory['traced_full_mb']:.1f} MB all / {memory['traced_filtered_mb']:.1f} MB one company "
          "(target < 150 MB)")
    differences = {k: reconciled[k] for k in ("missing_at_partner", "missing_here", "outcome_mismatch", "clock_skew")}
    print(f"reconcile {reconciled['ours']:,} of our events with the partner's {reconciled['theirs']:,}: "
          f"{reconciled['seconds']:.1f} s (target < 60 s), peak RSS {reconciled['rss_mb']:.0f} MB (target < 300 MB); "
          f"differences {differences}, planted {planted}")


if __name__ == "__main__":
    main()
