"""Gauges of the partners app computed when /metrics is scraped, from state every process shares
(registered with core.observability.scrape by PartnersConfig.ready):

- `smarthome_outbox_backlog`, `smarthome_outbox_oldest_age_seconds`: pending outbox messages in
  the database, and the age of the oldest - the same figures whichever process is scraped;
- `smarthome_partner_breaker_open{partner}`: 1 while the partner's breaker is open or half-open
  in the shared store (Redis), else 0 - so a process that saw it open stops saying so the moment
  another one closes it.

Each scrape costs one query for the backlog, one for the partners and one Redis MGET. With Redis
down the breaker gauge is left out (and the outage counted), the rest still reported.
"""

from prometheus_client.core import GaugeMetricFamily

from core.cache.shared import OUTAGE_ERRORS, shared_cache_unavailable
from partners.client.breaker import shared_states
from partners.models import Partner
from partners.outbox.services import outbox_backlog

BACKLOG = ("smarthome_outbox_backlog", "Outbox messages not yet delivered (pending), from the database at scrape time")
OLDEST = ("smarthome_outbox_oldest_age_seconds",
          "Age of the oldest pending outbox message (0 when none), from the database at scrape time")
BREAKER = ("smarthome_partner_breaker_open",
           "1 while the partner's circuit breaker is open or half-open in the shared store, else 0")


class SharedStateCollector:
    def describe(self):
        return [GaugeMetricFamily(*BACKLOG), GaugeMetricFamily(*OLDEST),
                GaugeMetricFamily(*BREAKER, labels=["partner"])]

    def collect(self):
        stats = outbox_backlog()
        yield GaugeMetricFamily(*BACKLOG, value=stats["backlog"])
        yield GaugeMetricFamily(*OLDEST, value=stats["oldest_age_s"])
        partners = dict(Partner.objects.values_list("pk", "slug"))
        try:
            states = shared_states(list(partners))
        except OUTAGE_ERRORS as error:
            shared_cache_unavailable("metrics", error)
            return
        family = GaugeMetricFamily(*BREAKER, labels=["partner"])
        for partner_id, slug in partners.items():
            family.add_metric([slug], 0 if states[partner_id] == "closed" else 1)
        yield family
