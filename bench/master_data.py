"""Master-data benchmark: 50,000 residents with flats and cars through the integration API and
through the admin's spreadsheet import, against PostgreSQL COPY of the same rows.

    .venv/bin/python bench/master_data.py [--residents 50000] [--buildings 25] [--batch 10000]

Starts its own PostgreSQL and Redis, migrates, and prepares two management companies with
`--buildings` buildings each and a flat per resident (through the same integration API, not
timed) and a partner with an active plate contract over every building. Then, each in a fresh
process (so its peak memory is its own):

- baseline: PostgreSQL `COPY` of the same rows (name, phone, e-mail, building, flat, kind, date,
  plate) into a scratch table;
- integration API: `POST /integration/v1/records` in batches of `--batch` records (a resident,
  their residency and their car are three records) through the whole Django stack in-process;
- admin import: the same residents as a CSV through the admin's import (`masterdata.services.
  imports`: the rows the confirm button applies), one import.

Every row is validated, encrypted (name, phone, e-mail, plate), tokenised (one plate token per
partner), indexed for the admin's search, audited, and its allowlist patch queued. Prints rows/s
and the ratio to COPY, the peak RSS of each process, and the allowlist patches the outbox got per
(partner, site) per batch (the target: one, not one per row).

Then the database's own floor for what the integration API wrote (`ceiling`): every row the
timed API run added to every table (a resident is some 26 rows: the app user, the resident, their
search digests and contact index, residency, move-in grant, car, plate token, external refs,
audit events, admin history entries, the change log), written again by binary COPY - no Python,
no parsing - into scratch tables with the same columns and indexes (no foreign keys, no
triggers). No implementation that writes those rows can be faster; the table prints each table's
share, and the ratio of that floor to the COPY baseline.
"""

import argparse
import csv
import io
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.harness import base_env, manage, own_servers  # noqa: E402

CLIENT_ID = "tenant-core-bench"
SOURCE = "tenant-core"
COMPANIES = {"api": "TC-API", "admin": "TC-ADMIN"}
PLATE_LETTERS = "АВЕКМНОРСТУХ"


def plate(n: int) -> str:
    """A valid private plate, different for every n below 12**3 * 999 * 20."""
    letters = PLATE_LETTERS[n % 12] + PLATE_LETTERS[(n // 12) % 12] + PLATE_LETTERS[(n // 144) % 12]
    return f"{letters[0]}{(n // 1728) % 999 + 1:03d}{letters[1:]}{77 + (n // (1728 * 999)) % 20}"


def people(path: str, residents: int, buildings: int) -> list[dict]:
    """The residents of one path: building b gets residents/buildings of them, flat numbers 1..n."""
    per_building = -(-residents // buildings)
    offset = 0 if path == "api" else 10_000_000
    rows = []
    for n in range(residents):
        b, flat = divmod(n, per_building)
        rows.append({
            "n": n, "building": f"{path}-B{b}", "building_name": f"Дом {path} {b}", "flat": str(flat + 1),
            "full_name": f"Тестова Мария Ивановна {path} {n}", "phone": f"+7916{offset // 10 + n:07d}",
            "email": f"{path}.{n}@example.ru", "kind": "owner", "valid_from": "2026-01-01",
            "plate": plate(n + (0 if path == "api" else residents)),
        })
    return rows


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def django_setup() -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = "smarthome.settings"
    import django

    django.setup()


def long_token() -> str:
    """A masterdata:write token of the bench client that outlives a slow run (the tests' tokens last five minutes)."""
    import datetime
    import secrets

    from django.utils import timezone
    from oauth2_provider.models import AccessToken, Application, set_token_value

    raw = secrets.token_urlsafe(32)
    token = AccessToken(user=None, application=Application.objects.get(client_id=CLIENT_ID), scope="masterdata:write",
                        expires=timezone.now() + datetime.timedelta(hours=4))
    set_token_value(token, raw)
    token.save()
    return raw


# --- phases, each run in its own process -------------------------------------------------------------


def phase_prepare(args) -> dict:
    """Companies, buildings and flats through the integration API; a partner with a plate contract."""
    django_setup()
    from django.test import Client
    from oauth2_provider.models import Application

    from access.models import ManagementCompany
    from tests import factories

    Application.objects.create(
        name=CLIENT_ID, client_id=CLIENT_ID, client_type=Application.CLIENT_CONFIDENTIAL,
        authorization_grant_type=Application.GRANT_CLIENT_CREDENTIALS,
    )
    token = long_token()
    client = Client()
    started = time.perf_counter()
    records = []
    for path, company in COMPANIES.items():
        records.append({"type": "company", "id": company, "version": 1, "name": f"УК {path}"})
        for b in range(args.buildings):
            records.append({"type": "building", "id": f"{path}-B{b}", "version": 1, "company": company,
                            "name": f"Дом {path} {b}", "address": "Москва, ул. Тестовая, 1"})
        for row in people(path, args.residents, args.buildings):
            records.append({"type": "unit", "id": f"{row['building']}-{row['flat']}", "version": 1,
                            "building": row["building"], "number": row["flat"]})
    for start in range(0, len(records), args.batch):
        response = client.post("/integration/v1/records", json.dumps(records[start:start + args.batch]),
                               content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {token}")
        assert response.status_code == 200, response.content[:500]
        assert response.json()["counts"]["error"] == 0, response.content[:2000]
    prepared_s = time.perf_counter() - started
    partner = factories.partner(name="Bench partner", slug="bench")
    for company in ManagementCompany.objects.all():
        factories.contract(partner_=partner, company_=company, buildings=list(company.buildings.all()))
    return {"prepared_s": prepared_s, "records": len(records)}


def phase_copy(args) -> dict:
    django_setup()
    from django.db import connection

    rows = people("api", args.residents, args.buildings)
    columns = ["n", "building", "flat", "full_name", "phone", "email", "kind", "valid_from", "plate"]
    with connection.cursor() as cursor:
        cursor.execute("CREATE UNLOGGED TABLE IF NOT EXISTS bench_copy (n bigint, building text, flat text, "
                       "full_name text, phone text, email text, kind text, valid_from date, plate text)")
        cursor.execute("TRUNCATE bench_copy")
        started = time.perf_counter()
        with cursor.copy(f"COPY bench_copy ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row([row[column] for column in columns])
        elapsed = time.perf_counter() - started
        cursor.execute("DROP TABLE bench_copy")
    return {"seconds": elapsed, "rows": len(rows), "peak_rss_mb": peak_rss_mb()}


def _last_ids() -> dict[str, int]:
    """{table: its highest integer id} for every table of the schema with one."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT table_name FROM information_schema.columns WHERE table_schema = 'public' "
                       "AND column_name = 'id' AND data_type IN ('integer', 'bigint') ORDER BY table_name")
        tables = [name for (name,) in cursor.fetchall() if not name.startswith("bench_")]
        last = {}
        for table in tables:
            cursor.execute(f'SELECT coalesce(max(id), 0) FROM "{table}"')  # noqa: S608 - names from the catalogue
            last[table] = cursor.fetchone()[0]
    return last


def phase_api(args) -> dict:
    django_setup()
    from django.test import Client

    client = Client()
    token = long_token()
    records = []
    for row in people("api", args.residents, args.buildings):
        n = row["n"]
        records += [
            {"type": "resident", "id": f"R-{n}", "version": 1, "company": COMPANIES["api"],
             "full_name": row["full_name"], "phone": row["phone"], "email": row["email"]},
            {"type": "residency", "id": f"RS-{n}", "version": 1, "resident": f"R-{n}",
             "unit": f"{row['building']}-{row['flat']}", "kind": row["kind"], "valid_from": row["valid_from"]},
            {"type": "vehicle", "id": f"V-{n}", "version": 1, "resident": f"R-{n}", "plate": row["plate"]},
        ]
    bodies = [json.dumps(records[start:start + args.batch]) for start in range(0, len(records), args.batch)]
    del records
    before = _last_ids()
    batches, errors = [], 0
    started = time.perf_counter()
    for body in bodies:
        response = client.post("/integration/v1/records", body, content_type="application/json",
                               HTTP_AUTHORIZATION=f"Bearer {token}")
        assert response.status_code == 200, response.content[:500]
        answer = response.json()
        errors += answer["counts"]["error"]
        batches.append(answer["allowlist_patches"])
    elapsed = time.perf_counter() - started
    written = {table: [before.get(table, 0), last] for table, last in _last_ids().items()
               if before.get(table, 0) < last}
    return {"seconds": elapsed, "rows": args.residents, "errors": errors, "batches": len(batches),
            "patches_per_batch": batches, "peak_rss_mb": peak_rss_mb(), "ids": written}


def phase_ceiling(args) -> dict:
    """The rows the API run added (`--since`: {table: [last id before, last id after]}), each table's
    written again by binary COPY into a scratch table LIKE it (same columns, defaults and indexes),
    timed per table."""
    django_setup()
    import tempfile

    from django.db import connection

    since = json.loads(args.since)
    tables = {}
    with connection.cursor() as cursor, tempfile.TemporaryDirectory() as scratch:
        for table, (last, after) in sorted(since.items()):
            rows_of_the_run = f"id > {int(last)} AND id <= {int(after)}"
            cursor.execute(f'SELECT count(*) FROM "{table}" WHERE {rows_of_the_run}')  # noqa: S608
            rows = cursor.fetchone()[0]
            if not rows:
                continue
            cursor.execute(f'CREATE TABLE "bench_{table}" (LIKE "{table}" INCLUDING ALL)')
            cursor.execute("SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) FROM pg_attribute "
                           "WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped AND attgenerated = ''",
                           [f"bench_{table}"])
            columns = cursor.fetchone()[0]
            path = Path(scratch) / table
            with path.open("wb") as out, cursor.copy(
                f'COPY (SELECT {columns} FROM "{table}" WHERE {rows_of_the_run}) TO STDOUT (FORMAT BINARY)'  # noqa: S608
            ) as copy:
                for block in copy:
                    out.write(block)
            started = time.perf_counter()
            with path.open("rb") as source, cursor.copy(f'COPY "bench_{table}" ({columns}) FROM STDIN (FORMAT BINARY)'
                                                        ) as copy:
                while block := source.read(1 << 20):
                    copy.write(block)
            tables[table] = {"rows": rows, "seconds": time.perf_counter() - started}
            cursor.execute(f'DROP TABLE "bench_{table}"')
    return {"tables": tables, "seconds": sum(t["seconds"] for t in tables.values()), "rows": args.residents}


def phase_admin(args) -> dict:
    django_setup()
    from django.contrib.auth import get_user_model

    from access.models import ManagementCompany
    from access.services.companies import staff_membership_create
    from masterdata.services.imports import spreadsheet_apply

    company = ManagementCompany.objects.get(name="УК admin")
    manager = get_user_model().objects.create_user(username="bench-manager", is_staff=True, is_superuser=True)
    staff_membership_create(user=manager, company=company)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["id", "full_name", "phone", "email", "building", "flat", "kind", "valid_from", "plates"])
    for row in people("admin", args.residents, args.buildings):
        writer.writerow(["", row["full_name"], row["phone"], row["email"], row["building_name"],
                         row["flat"], row["kind"], row["valid_from"], row["plate"]])
    data = out.getvalue().encode()
    started = time.perf_counter()
    outcome = spreadsheet_apply(user=manager, company=company, shape="residents", data=data, file_format="csv")
    elapsed = time.perf_counter() - started
    assert outcome.errors_count == 0, outcome.errors_count
    return {"seconds": elapsed, "rows": args.residents, "errors": outcome.errors_count,
            "batches": 1, "patches_per_batch": [outcome.allowlist_patches], "peak_rss_mb": peak_rss_mb()}


PHASES = {"prepare": phase_prepare, "copy": phase_copy, "api": phase_api, "admin": phase_admin,
          "ceiling": phase_ceiling}


def run_phase(name: str, args, env: dict, *, since: dict | None = None) -> dict:
    command = [sys.executable, __file__, "--phase", name, "--residents", str(args.residents),
               "--buildings", str(args.buildings), "--batch", str(args.batch), "--since", json.dumps(since or {})]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"phase {name} failed:\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def outbox_patches(env: dict) -> dict:
    code = ("import json, os; os.environ['DJANGO_SETTINGS_MODULE']='smarthome.settings'; import django; "
            "django.setup(); from partners.models import OutboxMessage as M; "
            "print(json.dumps({'patches': M.objects.filter(operation='allowlist_patch').count(), "
            "'sites': M.objects.filter(operation='allowlist_patch').values('partner_id', 'ordering_key')"
            ".distinct().count()}))")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                            check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--residents", type=int, default=50_000)
    parser.add_argument("--buildings", type=int, default=25)
    parser.add_argument("--batch", type=int, default=10_000, help="records per integration API request")
    parser.add_argument("--phase", choices=sorted(PHASES), help=argparse.SUPPRESS)
    parser.add_argument("--since", default="{}", help=argparse.SUPPRESS)
    parser.add_argument("--paths", default="api,admin", help="which timed paths to run (api, admin)")
    args = parser.parse_args()
    if args.phase:
        print(json.dumps(PHASES[args.phase](args)))
        return

    with own_servers() as (database_url, redis_url):
        env = base_env(
            DATABASE_URL=database_url, REDIS_URL=redis_url, CELERY_TASK_ALWAYS_EAGER="false", LOG_LEVEL="WARNING",
            PSEUDONYM_KEY="bench-pseudonym-key", SEARCH_INDEX_KEY="bench-search-index-key",
            MASTERDATA_CLIENTS=json.dumps({CLIENT_ID: {"source": SOURCE, "companies": list(COMPANIES.values())}}),
            MASTERDATA_IMPORT_MAX_ROWS=str(max(args.residents, 50_000)),
        )
        manage("migrate", "--noinput", env=env)
        prepared = run_phase("prepare", args, env)
        copy = run_phase("copy", args, env)
        timed = {}
        for path in args.paths.split(","):
            before = outbox_patches(env)
            timed[path] = run_phase(path, args, env)
            after = outbox_patches(env)
            timed[path]["outbox_patches"] = after["patches"] - before["patches"]
        ceiling = run_phase("ceiling", args, env, since=timed["api"]["ids"]) if "api" in timed else None

    copy_rate = copy["rows"] / copy["seconds"]
    print(f"master-data benchmark: {args.residents} residents with a flat and a car each, {args.buildings} buildings "
          f"per company, PostgreSQL, one partner with a plate contract over every building")
    print(f"  prepared {prepared['records']} company/building/flat records through the API in "
          f"{prepared['prepared_s']:.1f} s (not timed below)")
    print(f"  {'path':<34} {'rows/s':>9} {'x COPY':>8} {'peak RSS':>10}  allowlist patches")
    print(f"  {'baseline: COPY into a scratch table':<34} {copy_rate:>9.0f} {1:>8.2f} {copy['peak_rss_mb']:>7.0f} MB")
    labels = {"api": f"integration API ({args.batch}/request)", "admin": "admin import (CSV, one import)"}
    for path, figures in timed.items():
        rate = figures["rows"] / figures["seconds"]
        print(f"  {labels[path]:<34} {rate:>9.0f} {rate / copy_rate:>8.4f} {figures['peak_rss_mb']:>7.0f} MB  "
              f"{figures['outbox_patches']} in {figures['batches']} batch(es): per batch "
              f"{figures['patches_per_batch']}; errors {figures['errors']}")
    print("  targets: >= 0.05 x COPY, peak < 300 MB, one patch per (partner, site) per batch")
    if ceiling:
        rate = ceiling["rows"] / ceiling["seconds"]
        api_rate = timed["api"]["rows"] / timed["api"]["seconds"]
        total = sum(t["rows"] for t in ceiling["tables"].values())
        print(f"  the database's floor for the rows the API wrote ({total} rows, {total / ceiling['rows']:.1f} per "
              f"resident), binary COPY into tables with the same indexes: {rate:.0f} residents/s = "
              f"{rate / copy_rate:.4f} x COPY (the API reached {api_rate / rate:.2f} of it)")
        for table, figures in sorted(ceiling["tables"].items(), key=lambda item: -item[1]["seconds"]):
            print(f"    {table:<34} {figures['rows']:>8} rows {figures['seconds'] * 1000:>8.0f} ms "
                  f"({figures['seconds'] / ceiling['seconds']:>4.0%})")


if __name__ == "__main__":
    main()
