"""Every metric an alert rule or a dashboard panel uses is exported by the service, with the labels
the expression selects or groups by.

The test exercises the paths that create labelled series - a partner's access decision through
the partner API, an outbox message delivered to the real sandbox over mTLS, a security alert, an
audit verification, a request that found Redis down - then scrapes the real /metrics and parses
it. Prometheus's own series (`up`) and the target labels it adds (`job`, `instance`) are not the
service's to export.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from django.db import transaction
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from access.anomalies import security_alert_raise
from audit.services import audit_verify
from core.cache.shared import shared_cache_unavailable
from partners.outbox.services import outbox_enqueue
from tests.access.decision_scene import build_scene
from tests.partners import outbox_fixtures, partner_api

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "ops" / "prometheus" / "alerts.yml"
DASHBOARD = ROOT / "ops" / "grafana" / "smarthome.json"
PROMETHEUS_OWN = {"up"}
TARGET_LABELS = {"job", "instance"}
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool", "offset",
            "inf", "nan"}
SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_count", "_sum", "_created"),
            "summary": ("_count", "_sum", "_created"), "gauge": ("",), "untyped": ("",)}

client_settings = outbox_fixtures.client_settings
sandbox_partner = outbox_fixtures.sandbox_partner
partner_api_settings = partner_api.partner_api_settings
partner_caller = partner_api.partner_caller
pytestmark = [pytest.mark.partner, pytest.mark.redis, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def rule_expressions() -> list[str]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule["expr"] for group in groups for rule in group["rules"]]


def dashboard_expressions() -> list[str]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [target["expr"] for panel in panels for target in panel.get("targets", [])]


def selectors(expr: str) -> tuple[set[str], set[str]]:
    """(metric names, label names) an expression uses: names in matchers and in by/without/on clauses."""
    labels = set()
    for matchers in re.findall(r"\{([^}]*)\}", expr):
        labels |= set(re.findall(r"([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)", matchers))
    for clause in re.findall(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)", expr):
        labels |= {name.strip() for name in clause.split(",") if name.strip()}
    bare = re.sub(r'"[^"]*"|\{[^}]*\}|\[[^\]]*\]|\b(?:by|without|on|ignoring)\s*\([^)]*\)', " ", expr)
    names = {name for name in re.findall(r"\b([a-zA-Z_:][\w:]*)\b(?!\s*\()", bare)
             if name not in KEYWORDS and not re.fullmatch(r"\d+\w*", name)}
    return names, labels


def equality_matchers(expr: str) -> list[tuple[str, str, str]]:
    found = []
    for name, matchers in re.findall(r"([a-zA-Z_:][\w:]*)\{([^}]*)\}", expr):
        found += [(name, label, value) for label, value in re.findall(r'([a-zA-Z_]\w*)\s*=\s*"([^"]*)"', matchers)]
    return found


def exported(body: str) -> dict[str, list]:
    """{series name (suffix included): [samples]} of an exposition, families without samples included."""
    series: dict[str, list] = {}
    for family in text_string_to_metric_families(body):
        for suffix in SUFFIXES.get(family.type, ("",)):
            series.setdefault(family.name + suffix, [])
        for sample in family.samples:
            series.setdefault(sample.name, []).append(sample)
    return series


@pytest.fixture
def scraped(client, partner_caller, sandbox_partner, clean_sandbox) -> dict[str, list]:
    scene = build_scene(partner_caller)
    decision = partner_caller.post("/partner/v1/access-decisions", {
        "device_ref": scene.device.partner_device_ref, "credential": {"type": "plate", "token": scene.plate_token},
        "request_id": "req-metrics", "observed_at": timezone.now().isoformat(),
    })
    assert decision.status_code == 200, decision.content
    with transaction.atomic():
        outbox_enqueue(partner_id=sandbox_partner.pk, operation="face_delete", ordering_key="face:sub_metrics",
                       payload={"subject": "sub_metrics"})
    security_alert_raise(partner_id=partner_caller.partner.pk, kind="deny_ratio", scope="partner",
                         observed=0.9, threshold=0.8, window_s=60)
    audit_verify()
    shared_cache_unavailable("partner_decision", ConnectionError("the suite's stand-in for a Redis outage"))
    response = client.get("/metrics", REMOTE_ADDR="127.0.0.1")
    assert response.status_code == 200
    return exported(response.content.decode())


@pytest.mark.parametrize("source", ["alert rules", "dashboard"])
def test_every_metric_used_is_exported_with_its_labels(scraped, source):
    expressions = rule_expressions() if source == "alert rules" else dashboard_expressions()
    assert expressions
    for expr in expressions:
        names, labels = selectors(expr)
        names -= PROMETHEUS_OWN
        for name in names:
            assert name in scraped, f"{name} ({source}: {expr!r}) is not exported by /metrics"
            samples = scraped[name]
            assert samples, f"{name} has no series after exercising the paths that create them"
        if len(names) == 1:  # labels of a one-metric expression are that metric's labels
            name = next(iter(names))
            have = {label for sample in scraped[name] for label in sample.labels} | {"le"} | TARGET_LABELS
            assert labels - have == set(), f"{expr!r} uses labels {labels - have} that {name} does not have"
        for name, label, value in equality_matchers(expr):
            if name in PROMETHEUS_OWN:
                continue
            values = {sample.labels.get(label) for sample in scraped[name]}
            assert value in values, f"{name}{{{label}={value!r}}} matches no exported series (have {values})"


def test_the_name_extraction_sees_every_metric():
    """The parser above is not blind: it finds the metrics of a known expression, and only them."""
    names, labels = selectors('histogram_quantile(0.99, sum by (le) (rate(a_seconds_bucket{view="x:y"}[5m]))) '
                              '> 0.25 and on() (time() - max(b_timestamp)) > 2 * 86400')
    assert names == {"a_seconds_bucket", "b_timestamp"}
    assert labels == {"le", "view"}
