"""WSGI entry point of the partner pool (the partner API behind nginx's mTLS listener):
`gunicorn smarthome.wsgi_partner` (or `SMARTHOME_POOL=partner gunicorn`, see gunicorn.conf.py).
"""

from smarthome.pool import pool_application

application = pool_application("partner")
