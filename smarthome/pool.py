"""The WSGI application of one worker pool (smarthome/settings/pools.py).

An entry point names its pool; SMARTHOME_POOL in the environment may repeat it but never
contradict it (a process started as one pool with the other's variable refuses to start).
The settings module is still DJANGO_SETTINGS_MODULE - production stays explicit for both pools.
"""

import os

from django.core.exceptions import ImproperlyConfigured
from django.core.wsgi import get_wsgi_application


def pool_application(pool: str):
    said = os.environ.setdefault("SMARTHOME_POOL", pool)
    if said != pool:
        raise ImproperlyConfigured(f"this is the {pool} pool's WSGI entry point, but SMARTHOME_POOL={said}")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "smarthome.settings")
    return get_wsgi_application()
