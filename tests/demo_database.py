"""A demo seeded by the real commands into a database of its own, and `pg_dump` of it.

`migrate` and `seed_demo` run in a subprocess against a scratch database on the suite's
PostgreSQL, so a dump sees committed data and no other test's database is touched.
"""

import base64
import os
import secrets
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PG_DUMP = "/usr/lib/postgresql/15/bin/pg_dump"


def pg_dump(postgres_server, dbname: str) -> str:
    """The plain-SQL dump of one database of the suite's PostgreSQL."""
    return subprocess.run(
        [PG_DUMP, "--no-owner", "--host", postgres_server.host, "--port", str(postgres_server.port),
         "--username", "postgres", dbname],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout


@dataclass
class DemoDatabase:
    url: str
    env: dict
    postgres_server: object
    seed_output: str = ""

    def run(self, *args: str, stdin: str | None = None) -> str:
        """Run `python <args>` in the project with the demo's environment; its stdout."""
        result = subprocess.run([sys.executable, *args], cwd=ROOT, env=self.env, input=stdin, capture_output=True,
                                text=True, timeout=300)
        assert result.returncode == 0, (result.stdout[-2000:], result.stderr[-3000:])
        return result.stdout

    def dump(self) -> str:
        return pg_dump(self.postgres_server, self.url.rsplit("/")[-1])


def seed_demo_database(*, url: str, postgres_server, var_dir) -> DemoDatabase:
    """Migrate the empty database at `url` and seed the demo into it (its own field key)."""
    env = {
        **{k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")},
        "DJANGO_SETTINGS_MODULE": "smarthome.settings",
        "DATABASE_URL": url,
        "CACHE_URL": "locmemcache://",
        "SMARTHOME_VAR_DIR": str(var_dir),
        "FIELD_ENCRYPTION_KEYS": "k1:" + base64.b64encode(secrets.token_bytes(32)).decode(),
        "OAUTHLIB_INSECURE_TRANSPORT": "1",  # the demo's test clients speak plain HTTP
    }
    demo = DemoDatabase(url=url, env=env, postgres_server=postgres_server)
    demo.run("manage.py", "migrate", "--no-input", "-v", "0")
    demo.seed_output = demo.run("manage.py", "seed_demo")
    return demo
