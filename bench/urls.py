"""The URLs of the pool being measured plus the baselines the decision endpoint is compared to.

- `bench/bare`: a bare Django JSON view.
- `bench/floor`: the same view plus the round trips every decision makes to keep its promises,
  made by the very functions the decision uses: `version` - the data-version read (caches that
  are never stale), `audit` - the audit INSERT (audited before answered), `counters` - the Redis
  script call of the rate limit and anomaly counters (shared by every worker). `?steps=` picks some
  (default: version, counters, audit). No validation and no decision logic: the most a decision
  that keeps those promises could reach on this machine. `folded`: the version check and the audit
  INSERT as the decision now makes them, one statement - the event is inserted only if the change
  counter still equals the one this process last read (`folded_audit`).
- `bench/caches`: this worker's process id and its versioned caches' lookups
  (core.cache.versioned.lookups: hits and loads), for the hit ratio of a run.
"""

import os
import uuid
from importlib import import_module

from django.conf import settings
from django.http import JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from access.anomalies import decision_admit
from access.policy import access_data
from audit.actions import Action, ActorKind, Outcome
from audit.services import record, record_if_unchanged
from core.cache.versioned import assume_unchanged, lookups, refresh
from smarthome.settings.pools import POOLS

# this pool's own URL map (the decision endpoint is the partner pool's), with its error handlers
_pool_urls = import_module(POOLS[settings.SMARTHOME_POOL].urlconf)
project_urlpatterns = _pool_urls.urlpatterns
handler400, handler403, handler404, handler500 = (
    _pool_urls.handler400, _pool_urls.handler403, _pool_urls.handler404, _pool_urls.handler500,
)

ANSWER = {"decision": "allow", "reason": "granted", "decision_id": "0" * 32, "ttl_s": 60}
STEPS = ("version", "counters", "audit", "folded")  # the decision's order (folded: version and audit in one)


def _audit_fields(actor_ref: str) -> dict:
    return {"action": Action.ACCESS_DECISION, "outcome": Outcome.SUCCESS, "actor_kind": ActorKind.PARTNER,
            "actor_ref": actor_ref, "object_type": "access_decision",
            "object_ref": f"decision:{uuid.uuid4().hex}", "partner_id": 1, "company_id": 1, "building_id": 1,
            "device_ref": "gate-1", "reason": "granted", "source_ip": "203.0.113.7", "latency_ms": 1.0}


def folded_audit() -> bool:
    """The version check and the audit INSERT as the decision makes them (core.cache.versioned
    .assume_unchanged, audit.services.record_if_unchanged), inside a request: False when the change
    counter had moved (then read and inserted anew)."""
    if assume_unchanged() is None:  # this process has not read the log yet
        access_data.current_version()
        record(**_audit_fields("bench:floor"))
        return False
    if record_if_unchanged(**_audit_fields("bench:floor")) is None:
        refresh()
        record(**_audit_fields("bench:floor"))
        return False
    return True


@csrf_exempt
def bare(request):
    return JsonResponse(ANSWER)


@csrf_exempt
def floor(request):
    steps = request.GET.get("steps", "version,counters,audit").split(",")
    if unknown := set(steps) - set(STEPS):
        return JsonResponse({"steps": f"unknown: {sorted(unknown)}; known: {list(STEPS)}"}, status=400)
    if "version" in steps:
        access_data.current_version()
    if "counters" in steps:
        decision_admit(partner_id=1, device_ref="gate-1", denied=False, resident_id=1)
    if "audit" in steps:
        record(**_audit_fields("bench:floor"))
    if "folded" in steps:
        folded_audit()
    return JsonResponse(ANSWER)


@csrf_exempt
def caches(request):
    return JsonResponse({"pid": os.getpid(), "lookups": lookups()})


urlpatterns = [path("bench/bare", bare), path("bench/floor", floor), path("bench/caches", caches),
               *project_urlpatterns]
