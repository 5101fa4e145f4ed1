"""The alerting rules (ops/prometheus/alerts.yml): promtool accepts them, their unit tests pass,
every alert has a firing and a quiet unit test, every alert's runbook entry exists, and the unit
tests are not blind (a rule whose threshold is changed fails them)."""

import re
import shutil
import subprocess
from pathlib import Path

import yaml
from markdown.extensions.toc import slugify

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "ops" / "prometheus" / "alerts.yml"
UNIT_TESTS = ROOT / "ops" / "prometheus" / "alerts.test.yml"
OPERATIONS = ROOT / "docs" / "operations.md"


def promtool(*args, cwd=RULES.parent) -> subprocess.CompletedProcess:
    binary = shutil.which("promtool")
    assert binary, "promtool is missing: scripts/install_system_deps.sh installs Debian's prometheus package"
    return subprocess.run([binary, *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def alerts() -> list[dict]:
    return [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"] if "alert" in rule]


def test_promtool_check_rules():
    result = promtool("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alerts())} rules found" in result.stdout


def test_promtool_unit_tests_pass():
    result = promtool("test", "rules", UNIT_TESTS.name)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_has_a_firing_and_a_quiet_unit_test():
    fires, quiet = set(), set()
    for case in yaml.safe_load(UNIT_TESTS.read_text())["tests"]:
        for check in case.get("alert_rule_test", []):
            (fires if check.get("exp_alerts") else quiet).add(check["alertname"])
    names = {rule["alert"] for rule in alerts()}
    assert names - fires == set()
    assert names - quiet == set()


def test_every_alert_points_at_its_runbook_entry():
    headings = {slugify(match, "-") for match in re.findall(r"^#{2,4} (.+)$", OPERATIONS.read_text(), re.M)}
    for rule in alerts():
        assert rule["labels"]["severity"] in {"warning", "critical"}
        url = rule["annotations"]["runbook_url"]
        assert url == f"docs/operations.md#{rule['alert'].lower()}", url
        assert rule["alert"].lower() in headings, f"docs/operations.md has no section {rule['alert']}"


def test_the_unit_tests_catch_a_changed_threshold(tmp_path):
    shutil.copy(UNIT_TESTS, tmp_path / UNIT_TESTS.name)
    loosened = RULES.read_text().replace("max(smarthome_outbox_backlog) > 500", "max(smarthome_outbox_backlog) > 5000")
    assert loosened != RULES.read_text()
    (tmp_path / RULES.name).write_text(loosened)
    result = promtool("test", "rules", UNIT_TESTS.name, cwd=tmp_path)
    assert result.returncode != 0
    assert "SmarthomeOutboxBacklog" in result.stdout + result.stderr


def test_the_example_scrape_configuration_is_valid_and_loads_the_rules():
    result = promtool("check", "config", "--syntax-only", "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    config = yaml.safe_load((RULES.parent / "prometheus.yml").read_text())
    assert config["rule_files"] == [RULES.name]
    assert [job["job_name"] for job in config["scrape_configs"]] == ["smarthome"]
