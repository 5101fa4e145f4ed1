"""WSGI entry point of the public pool (residents, OAuth2, admin): `gunicorn smarthome.wsgi`.

The partner pool has its own entry point, smarthome.wsgi_partner (smarthome/settings/pools.py).
"""

from smarthome.pool import pool_application

application = pool_application("public")
