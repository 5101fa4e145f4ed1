"""The URLs of the pool being measured plus the baselines the decision endpoint is compared to.

- `bench/bare`: a bare Django JSON view.
- `bench/floor`: the same view plus the round trips every decision makes to keep its promises,
  made by the very functions the decision uses: `version` - the data-version read (caches that
  are never stale), `audit` - the audit INSERT (audited before answered), `counters` - the Redis
  script call of the rate limit and anomaly counters (shared by every worker). `?steps=` picks some
  (default: version, counters, audit). No validation and no decision logic: the most a decision
  that keeps those promises could reach on this machine. `folded` (measured, not what the decision
  does): the version read and the audit INSERT as one statement - the event is inserted only if the
  change counter still equals the one this process last read, and the counter comes back either way.
- `bench/caches`: this worker's process id and its versioned caches' lookups
  (core.cache.versioned.lookups: hits and loads), for the hit ratio of a run.
"""

import os
import uuid
from importlib import import_module

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from django.http import JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from access.anomalies import decision_admit
from access.policy import access_data
from audit.actions import Action, ActorKind, Outcome
from audit.services import _INSERT_FIELDS, _event, _insert_statement, record
from core.cache.versioned import _changes, lookups
from core.prepared_statements import prepared_cursor
from smarthome.settings.pools import POOLS

# this pool's own URL map (the decision endpoint is the partner pool's), with its error handlers
_pool_urls = import_module(POOLS[settings.SMARTHOME_POOL].urlconf)
project_urlpatterns = _pool_urls.urlpatterns
handler400, handler403, handler404, handler500 = (
    _pool_urls.handler400, _pool_urls.handler403, _pool_urls.handler404, _pool_urls.handler500,
)

ANSWER = {"decision": "allow", "reason": "granted", "decision_id": "0" * 32, "ttl_s": 60}
STEPS = ("version", "counters", "audit", "folded")  # the decision's order (folded: version and audit in one)
_FOLDED_SQL = {}


def _folded_statement(db) -> str:
    """The audit INSERT, made only while the change counter equals the last parameter; the counter
    and the new event's id (NULL when not inserted) come back in one row."""
    if DEFAULT_DB_ALIAS not in _FOLDED_SQL:
        head = _insert_statement(db).partition(" VALUES (")[0]
        values = ", ".join(f"%s::{field.db_type(db)}" for field in _INSERT_FIELDS)
        _FOLDED_SQL[DEFAULT_DB_ALIAS] = (  # identifiers and types from the model's meta; values are parameters
            "WITH counter AS (SELECT value FROM core_dataversion WHERE scope = 'changes'), "  # noqa: S608
            f"inserted AS ({head} SELECT {values} FROM counter WHERE counter.value = %s RETURNING id) "
            "SELECT counter.value, (SELECT id FROM inserted) FROM counter"
        )
    return _FOLDED_SQL[DEFAULT_DB_ALIAS]


def _audit_fields(actor_ref: str) -> dict:
    return {"action": Action.ACCESS_DECISION, "outcome": Outcome.SUCCESS, "actor_kind": ActorKind.PARTNER,
            "actor_ref": actor_ref, "object_type": "access_decision",
            "object_ref": f"decision:{uuid.uuid4().hex}", "partner_id": 1, "company_id": 1, "building_id": 1,
            "device_ref": "gate-1", "reason": "granted", "source_ip": "203.0.113.7", "latency_ms": 1.0}


def folded_audit() -> tuple[int, int | None]:
    """(change counter, event id or None): the version check and the audit INSERT in one statement."""
    db = connections[DEFAULT_DB_ALIAS]
    event = _event(**_audit_fields("bench:floor"))
    params = [field.get_db_prep_save(getattr(event, field.attname), db) for field in _INSERT_FIELDS]
    with prepared_cursor(db) as cursor:
        cursor.execute(_folded_statement(db), [*params, _changes.mark or 0])
        return cursor.fetchone() or (None, None)  # no counter yet: nothing inserted


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
    if "folded" in steps and folded_audit()[1] is None:  # the counter moved: read the changes, insert anew
        access_data.current_version()
        record(**_audit_fields("bench:floor"))
    return JsonResponse(ANSWER)


@csrf_exempt
def caches(request):
    return JsonResponse({"pid": os.getpid(), "lookups": lookups()})


urlpatterns = [path("bench/bare", bare), path("bench/floor", floor), path("bench/caches", caches),
               *project_urlpatterns]
