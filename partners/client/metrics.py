"""Prometheus metrics of partner calls and of the outbox (labels never carry personal data).

The gauges of shared state - breaker open, outbox backlog and age - are computed at scrape time
from the shared store and the database (partners/metrics.py), not set by whichever process saw them.
"""

from prometheus_client import Counter, Histogram

request_seconds = Histogram(
    "smarthome_partner_request_seconds",
    "Latency of one HTTP exchange with a partner (each attempt)",
    ["partner", "operation"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
requests_total = Counter(
    "smarthome_partner_requests_total",
    "HTTP exchanges with partners (each attempt) by outcome: success, http_4xx, http_5xx, timeout, ...",
    ["partner", "operation", "outcome"],
)
outbox_dead_lettered_total = Counter(
    "smarthome_outbox_dead_lettered_total", "Outbox messages given up on after the maximum attempts",
    ["operation"],
)
outbox_delivered_total = Counter(
    "smarthome_outbox_delivered_total", "Outbox messages the partner acknowledged", ["operation"]
)
