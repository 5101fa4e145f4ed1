"""gunicorn settings for production, for either web worker pool (gunicorn reads this file from the
working directory).

One gunicorn per pool (smarthome/settings/pools.py), each with its own socket and workers, so
public load cannot occupy the workers that decide for barriers:

    gunicorn                              # the public pool: smarthome.wsgi on 127.0.0.1:8000
    SMARTHOME_POOL=partner gunicorn       # the partner pool: smarthome.wsgi_partner on 127.0.0.1:8001

SMARTHOME_POOL picks the entry point, the default bind and the process name (`smarthome-public`,
`smarthome-partner`). Sync workers behind nginx (nginx buffers slow clients).
GUNICORN_WORKERS overrides the worker count (default: 2 per core + 1, gunicorn's own advice; each
pool has its own). gunicorn itself believes no forwarded header: the service does, over the
authenticated proxy hop only (core/http/proxy.py). GUNICORN_BIND (default above) may be
`unix:/run/smarthome/public.sock` / `partner.sock`, sockets only nginx can reach. The service writes
one JSON line per request itself; GUNICORN_ACCESS_LOG (`-` for stdout, or a file) adds gunicorn's,
as JSON with the path only (never the query string). With PROMETHEUS_MULTIPROC_DIR set, each pool
keeps its metrics in its own subdirectory, so each pool's /metrics reports that pool alone.
After a worker has loaded the project, gc.freeze() moves every object that exists then - Django,
DRF, the URL conf, the models - out of the collector's reach, so the cyclic GC scans only what
requests allocate (measurable on the access-decision path: see bench/decisions.py).
"""

import gc
import multiprocessing
import os

# The pools' entry points (smarthome/settings/pools.py). Not imported from there: importing the
# settings package here, in the master, would load the settings before a pool is chosen.
_entry_points = {"public": "smarthome.wsgi", "partner": "smarthome.wsgi_partner"}
_default_binds = {"public": "127.0.0.1:8000", "partner": "127.0.0.1:8001"}
_pool = os.environ.get("SMARTHOME_POOL", "public")
if _pool not in _entry_points:
    raise SystemExit(f"SMARTHOME_POOL must be one of {sorted(_entry_points)}, not {_pool!r}")

wsgi_app = _entry_points[_pool]
proc_name = f"smarthome-{_pool}"
workers = int(os.environ.get("GUNICORN_WORKERS", 2 * multiprocessing.cpu_count() + 1))
worker_class = "sync"
timeout = 30
graceful_timeout = 20
bind = [os.environ.get("GUNICORN_BIND", _default_binds[_pool])]
# X-Forwarded-Proto from a loopback peer would make gunicorn call any local process's request https.
forwarded_allow_ips = ""
accesslog = os.environ.get("GUNICORN_ACCESS_LOG") or None
logger_class = "core.observability.gunicorn_access.JsonAccessLogger"

if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    _metrics_dir = os.path.join(os.environ["PROMETHEUS_MULTIPROC_DIR"], _pool)
    os.makedirs(_metrics_dir, exist_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = _metrics_dir


def post_worker_init(worker):
    gc.freeze()
