"""gunicorn settings for production (`gunicorn smarthome.wsgi` reads this file from the working directory).

Sync workers behind nginx (nginx buffers slow clients). GUNICORN_WORKERS overrides the worker
count (default: 2 per core + 1, gunicorn's own advice). gunicorn itself believes no forwarded
header: the service does, over the authenticated proxy hop only (core/http/proxy.py).
GUNICORN_BIND (default 127.0.0.1:8000) may be `unix:/run/smarthome/web.sock`, a socket only
nginx can reach. The service writes one JSON line per request itself; GUNICORN_ACCESS_LOG
(`-` for stdout, or a file) adds gunicorn's, as JSON with the path only (never the query string).
After a worker has loaded the project, gc.freeze() moves every object that exists then - Django,
DRF, the URL conf, the models - out of the collector's reach, so the cyclic GC scans only what
requests allocate (measurable on the access-decision path: see bench/decisions.py).
"""

import gc
import multiprocessing
import os

wsgi_app = "smarthome.wsgi"
workers = int(os.environ.get("GUNICORN_WORKERS", 2 * multiprocessing.cpu_count() + 1))
worker_class = "sync"
timeout = 30
graceful_timeout = 20
bind = [os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")]
# X-Forwarded-Proto from a loopback peer would make gunicorn call any local process's request https.
forwarded_allow_ips = ""
accesslog = os.environ.get("GUNICORN_ACCESS_LOG") or None
logger_class = "core.observability.gunicorn_access.JsonAccessLogger"


def post_worker_init(worker):
    gc.freeze()
