"""What /metrics exposes: this process's metrics (or every worker's, with PROMETHEUS_MULTIPROC_DIR)
plus gauges computed at scrape time from state every process shares.

A gauge one process sets shows only what that process saw: a web process with no worker in it
reports no outbox backlog, and keeps reporting a breaker open long after another process closed
it. Gauges of shared truth are instead computed when Prometheus scrapes, by collectors the apps
register here (`register_scrape_collector`, from their AppConfig.ready): the database's outbox
backlog, the breakers' state in the shared store. A family such a collector describes replaces
any family of the same name the processes report.
"""

import os

from prometheus_client import REGISTRY, CollectorRegistry, generate_latest, multiprocess

_collectors: list = []


def register_scrape_collector(collector) -> None:
    """Add a collector (prometheus_client's `describe()` / `collect()` protocol) run at each scrape."""
    if collector not in _collectors:
        _collectors.append(collector)


class _ProcessMetrics:
    """The processes' own families, minus those a scrape-time collector computes."""

    def __init__(self, source, replaced: set[str]):
        self.source = source
        self.replaced = replaced

    def collect(self):
        for family in self.source.collect():
            if family.name not in self.replaced:
                yield family


def scrape_registry() -> CollectorRegistry:
    """The registry /metrics renders (tests read samples from it with `get_sample_value`)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        source = CollectorRegistry()
        multiprocess.MultiProcessCollector(source)
    else:
        source = REGISTRY
    replaced = {family.name for collector in _collectors for family in collector.describe()}
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_ProcessMetrics(source, replaced))
    for collector in _collectors:
        registry.register(collector)
    return registry


def exposition() -> bytes:
    return generate_latest(scrape_registry())
