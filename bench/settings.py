"""Production settings plus the bench's bare baseline view (bench.urls) and limits out of the way."""

from smarthome.settings.production import *  # noqa: F403

ROOT_URLCONF = "bench.urls"
# The benchmark drives one partner flat out: rate limits and anomaly thresholds must not bite.
PARTNER_DECISION_RATE = "1000000/s"
ACCESS_ANOMALY = {"max_decisions": 10**9, "max_decisions_per_device": 10**9, "max_deny_ratio": 1.0,
                  "max_unknown_credentials": 10**9, "max_decisions_per_resident": 10**9, "suspend_on": []}
