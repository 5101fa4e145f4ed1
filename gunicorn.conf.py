"""gunicorn settings for production (`gunicorn smarthome.wsgi` reads this file from the working directory).

Sync workers behind nginx (nginx buffers slow clients). GUNICORN_WORKERS overrides the worker
count (default: 2 per core + 1, gunicorn's own advice). After a worker has loaded the project,
gc.freeze() moves every object that exists then - Django, DRF, the URL conf, the models - out of
the collector's reach, so the cyclic GC scans only what requests allocate (measurable on the
access-decision path: see bench/decisions.py).
"""

import gc
import multiprocessing
import os

wsgi_app = "smarthome.wsgi"
workers = int(os.environ.get("GUNICORN_WORKERS", 2 * multiprocessing.cpu_count() + 1))
worker_class = "sync"
timeout = 30
graceful_timeout = 20
forwarded_allow_ips = os.environ.get("GUNICORN_FORWARDED_ALLOW_IPS", "127.0.0.1")


def post_worker_init(worker):
    gc.freeze()
