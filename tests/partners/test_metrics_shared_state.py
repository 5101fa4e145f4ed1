"""/metrics shows the shared truth: a web process with no worker in it reports the database's outbox
backlog and the breakers' state in Redis as they are at scrape time, not what it last saw itself.

A real web process (runserver) on the suite's PostgreSQL (this test's committed rows) and Redis;
the backlog and the breaker are changed from outside it, as a worker in another process would.
"""

from __future__ import annotations

import datetime
import os
import subprocess
import sys
from pathlib import Path

import pybreaker
import pytest
import requests
from django.conf import settings
from django.db import connection
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from partners.client.breaker import _redis_client, forget_breakers
from partners.models import OutboxMessage
from tests import factories, infra

pytestmark = [pytest.mark.redis, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parent.parent.parent


@pytest.fixture
def web_without_worker(tmp_path):
    db = connection.settings_dict
    env = {key: value for key, value in os.environ.items() if key not in ("CACHE_URL", "PROMETHEUS_MULTIPROC_DIR")}
    env.update({
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "REDIS_URL": settings.REDIS_URL,
        "DJANGO_SETTINGS_MODULE": "smarthome.settings",
    })
    port = infra.free_port()
    log = (tmp_path / "web.log").open("w")
    process = subprocess.Popen([sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
                               cwd=ROOT, env=env, stdout=log, stderr=log)
    try:
        infra.wait_for_http(f"http://127.0.0.1:{port}/healthz", timeout_s=60)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(20)
        log.close()


def scrape(base: str) -> dict:
    response = requests.get(f"{base}/metrics", timeout=10)
    assert response.status_code == 200
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def set_breaker(partner_id: int, state: str) -> None:
    """What another process's breaker writes to the shared store (pybreaker's own storage)."""
    forget_breakers()
    namespace = f"{settings.CACHES['default']['KEY_PREFIX']}:breaker:{partner_id}"
    storage = pybreaker.CircuitRedisStorage(pybreaker.STATE_CLOSED, _redis_client(), namespace=namespace)
    storage.state = state
    if state == pybreaker.STATE_OPEN:
        storage.opened_at = datetime.datetime.now(datetime.UTC)


def test_metrics_of_a_worker_less_web_process_show_the_shared_backlog_and_breaker(web_without_worker):
    partner = factories.partner(slug="metrics-partner")
    created = timezone.now() - datetime.timedelta(minutes=10)
    OutboxMessage.objects.bulk_create([
        OutboxMessage(partner=partner, operation="face_delete", ordering_key=f"face:s{n}", payload={"subject": f"s{n}"},
                      idempotency_key=f"metrics-{n}", next_attempt_at=created, created_at=created)
        for n in range(372)
    ])
    set_breaker(partner.pk, pybreaker.STATE_OPEN)

    first = scrape(web_without_worker)
    assert first[("smarthome_outbox_backlog", ())] == 372
    assert first[("smarthome_outbox_oldest_age_seconds", ())] >= 600
    assert first[("smarthome_partner_breaker_open", (("partner", "metrics-partner"),))] == 1

    # another process delivers part of the backlog and its breaker closes again
    delivered = OutboxMessage.objects.order_by("pk").values_list("pk", flat=True)[:72]
    OutboxMessage.objects.filter(pk__in=list(delivered)).update(status=OutboxMessage.Status.DELIVERED,
                                                             delivered_at=timezone.now())
    set_breaker(partner.pk, pybreaker.STATE_CLOSED)

    second = scrape(web_without_worker)
    assert second[("smarthome_outbox_backlog", ())] == 300
    assert second[("smarthome_partner_breaker_open", (("partner", "metrics-partner"),))] == 0
    # one family each: the processes' own gauges of the same names are not reported beside them
    names = [name for name, _ in second]
    assert names.count("smarthome_outbox_backlog") == 1
