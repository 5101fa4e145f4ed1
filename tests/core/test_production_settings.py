"""Production mode: `check --deploy` is clean, and the process refuses to start without secrets."""

import base64
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PRODUCTION_ENV = {
    "DJANGO_SETTINGS_MODULE": "smarthome.settings.production",
    "DJANGO_SECRET_KEY": "k" * 20 + "-production-grade-random-value-0123456789abcdef",
    "DJANGO_ALLOWED_HOSTS": "smarthome.example.ru",
    "DATABASE_URL": "postgres://smarthome@127.0.0.1:1/smarthome",
    "PSEUDONYM_KEY": "pseudonym-key-for-the-check",
    "SEARCH_INDEX_KEY": "search-index-key-for-the-check",
    "FIELD_ENCRYPTION_KEYS": "k1:" + base64.b64encode(b"k" * 32).decode(),
    "AUDIT_SIGNING_KEY": base64.b64encode(b"a" * 32).decode(),
}


def run_manage(*args, env):
    base = {k: os.environ[k] for k in ("PATH", "HOME", "LANG", "SMARTHOME_VAR_DIR") if k in os.environ}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_deploy_reports_nothing():
    result = run_manage("check", "--deploy", "--fail-level", "DEBUG", env=PRODUCTION_ENV)
    assert result.returncode == 0, result.stderr + result.stdout
    assert "System check identified no issues" in result.stdout


def test_refuses_to_start_without_secrets():
    absent = ("DJANGO_SECRET_KEY", "PSEUDONYM_KEY", "SEARCH_INDEX_KEY", "FIELD_ENCRYPTION_KEYS", "AUDIT_SIGNING_KEY")
    env = {k: v for k, v in PRODUCTION_ENV.items() if k not in absent}
    result = run_manage("check", env=env)
    assert result.returncode != 0
    assert "refuse to start without" in result.stderr
    for name in absent:
        assert name in result.stderr


def test_refuses_a_weak_secret_key():
    result = run_manage("check", env={**PRODUCTION_ENV, "DJANGO_SECRET_KEY": "short"})
    assert result.returncode != 0
    assert "at least 50 characters" in result.stderr
