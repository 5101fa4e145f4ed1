"""Production mode: `check --deploy` is clean, and the process refuses to start without secrets."""

import base64
import os
import subprocess
import sys
from pathlib import Path

import pytest

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
    "CONSENT_RECEIPT_SIGNING_KEY": base64.b64encode(b"r" * 32).decode(),
    "IDENTITY_PUBLIC_URL": "https://smarthome.example.ru",
}


def run_manage(*args, env):
    base = {k: os.environ[k] for k in ("PATH", "HOME", "LANG", "SMARTHOME_VAR_DIR", "PYTHONPATH") if k in os.environ}
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
    absent = ("DJANGO_SECRET_KEY", "PSEUDONYM_KEY", "SEARCH_INDEX_KEY", "FIELD_ENCRYPTION_KEYS", "AUDIT_SIGNING_KEY",
              "CONSENT_RECEIPT_SIGNING_KEY")
    env = {k: v for k, v in PRODUCTION_ENV.items() if k not in absent}
    result = run_manage("check", env=env)
    assert result.returncode != 0
    assert "refuse to start without" in result.stderr
    for name in absent:
        assert name in result.stderr


@pytest.mark.parametrize("url", ["http://smarthome.example.ru", None])
def test_refuses_links_to_residents_that_are_not_https(url):
    env = {k: v for k, v in PRODUCTION_ENV.items() if k != "IDENTITY_PUBLIC_URL"}
    if url:
        env["IDENTITY_PUBLIC_URL"] = url  # else the development default, http://127.0.0.1:8000
    result = run_manage("check", env=env)
    assert result.returncode != 0
    assert "IDENTITY_PUBLIC_URL must be the public https:// origin" in result.stderr


def test_refuses_a_weak_secret_key():
    result = run_manage("check", env={**PRODUCTION_ENV, "DJANGO_SECRET_KEY": "short"})
    assert result.returncode != 0
    assert "at least 50 characters" in result.stderr


# --- "production" is said, never guessed from the settings module's name ---------------------

SHOW_MODE = (
    "from django.conf import settings; from audit import conf; "
    "print(settings.SMARTHOME_ENV, settings.PRODUCTION, conf.is_production())"
)


def deployment_settings(tmp_path, body: str) -> dict:
    """A deployment's own settings module (any name), importable by the subprocess."""
    (tmp_path / "site_config.py").write_text(body)
    return {"DJANGO_SETTINGS_MODULE": "site_config", "PYTHONPATH": str(tmp_path)}


def test_a_deployment_module_importing_production_is_production_whatever_its_name(tmp_path):
    env = {**PRODUCTION_ENV, **deployment_settings(tmp_path, "from smarthome.settings.production import *\n"),
           "SMARTHOME_VAR_DIR": str(tmp_path / "var")}
    result = run_manage("shell", "--no-imports", "-c", SHOW_MODE, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["production", "True", "True"]


def test_smarthome_env_production_on_a_module_of_its_own_refuses_to_start_without_keys(tmp_path):
    env = {**{k: v for k, v in PRODUCTION_ENV.items() if k != "AUDIT_SIGNING_KEY"},
           **deployment_settings(tmp_path, "from smarthome.settings.base import *\n"),
           "SMARTHOME_ENV": "production", "SMARTHOME_VAR_DIR": str(tmp_path / "var")}
    result = run_manage("check", env=env)
    assert result.returncode != 0
    assert "refuse to start without: AUDIT_SIGNING_KEY" in result.stderr
    assert not (tmp_path / "var").exists()  # no development key was made up


def test_development_is_the_explicit_default(tmp_path):
    env = {**deployment_settings(tmp_path, "from smarthome.settings.base import *\n"),
           "SMARTHOME_VAR_DIR": str(tmp_path / "var")}
    result = run_manage("shell", "--no-imports", "-c", SHOW_MODE, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["development", "False", "False"]


def test_contradictory_or_unknown_modes_are_refused():
    result = run_manage("check", env={**PRODUCTION_ENV, "SMARTHOME_ENV": "development"})
    assert result.returncode != 0
    assert "smarthome.settings.production with SMARTHOME_ENV=development" in result.stderr
    result = run_manage("check", env={**PRODUCTION_ENV, "DJANGO_SETTINGS_MODULE": "smarthome.settings",
                                      "SMARTHOME_ENV": "production"})
    assert result.returncode != 0
    assert "not hardened" in result.stderr
    assert "use DJANGO_SETTINGS_MODULE=smarthome.settings.production" in result.stderr
    result = run_manage("shell", "--no-imports", "-c", SHOW_MODE, env={**PRODUCTION_ENV, "SMARTHOME_ENV": "production"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["production", "True", "True"]
    result = run_manage("check", env={**PRODUCTION_ENV, "SMARTHOME_ENV": "staging"})
    assert result.returncode != 0
    assert "SMARTHOME_ENV must be 'development' or 'production'" in result.stderr


def test_malformed_keys_stop_a_production_process_at_start():
    result = run_manage("check", env={**PRODUCTION_ENV, "FIELD_ENCRYPTION_KEYS": "k1:not-a-key"})
    assert result.returncode != 0
    assert "key 'k1' is not valid base64" in result.stderr
    result = run_manage("check", env={**PRODUCTION_ENV, "CONSENT_RECEIPT_SIGNING_KEY": "c2hvcnQ="})
    assert result.returncode != 0
    assert "CONSENT_RECEIPT_SIGNING_KEY must hold a 32-byte Ed25519 seed" in result.stderr


def test_in_production_no_loader_falls_back_to_a_development_key(settings, tmp_path):
    from django.core.exceptions import ImproperlyConfigured

    from audit import signing
    from consent.receipts import receipt_keyring
    from core.crypto.keyring import KeyringError, get_keyring

    settings.VAR_DIR = tmp_path
    settings.FIELD_ENCRYPTION_KEY_FILE = str(tmp_path / "field-keys")
    settings.FIELD_ENCRYPTION_KEYS = ""
    settings.AUDIT_SIGNING_KEY = ""
    settings.CONSENT_RECEIPT_SIGNING_KEY = ""
    settings.PRODUCTION = True
    with pytest.raises(KeyringError, match="production requires FIELD_ENCRYPTION_KEYS"):
        get_keyring()
    with pytest.raises(ImproperlyConfigured, match="production requires AUDIT_SIGNING_KEY"):
        signing.private_key()
    with pytest.raises(ImproperlyConfigured, match="production requires CONSENT_RECEIPT_SIGNING_KEY"):
        receipt_keyring()
    assert list(tmp_path.iterdir()) == []
    settings.PRODUCTION = False  # the same settings outside production: development keys, made once
    assert get_keyring().primary_kid == "dev1"
    assert receipt_keyring().current_key_id
    assert sorted(p.name for p in tmp_path.iterdir()) == ["consent-receipt-ed25519.pem", "field-keys"]
