"""Production mode: no defaults for secrets, HTTPS everywhere, `check --deploy` clean.

Select it with DJANGO_SETTINGS_MODULE=smarthome.settings.production. Every required variable
missing makes the process refuse to start with ImproperlyConfigured naming it.
"""

from django.core.exceptions import ImproperlyConfigured

from smarthome.settings.base import *  # noqa: F403
from smarthome.settings.base import env

REQUIRED = [
    "DJANGO_SECRET_KEY",
    "DJANGO_ALLOWED_HOSTS",
    "DATABASE_URL",
    "PSEUDONYM_KEY",
    "FIELD_ENCRYPTION_KEYS",
    "AUDIT_SIGNING_KEY",
]
_missing = [name for name in REQUIRED if not env.str(name, default="")]
if _missing:
    raise ImproperlyConfigured(
        "production settings refuse to start without: " + ", ".join(_missing)
    )

DEBUG = False
PRODUCTION = True
SECRET_KEY = env.str("DJANGO_SECRET_KEY")
if len(SECRET_KEY) < 50 or SECRET_KEY.startswith(("dev-only", "django-insecure")):
    raise ImproperlyConfigured("DJANGO_SECRET_KEY must be a random value of at least 50 characters")
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS")
PSEUDONYM_KEY = env.str("PSEUDONYM_KEY")

SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=True)
# Probes talk plain HTTP to the process inside the host; everything else is redirected.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_HSTS_SECONDS = env.int("DJANGO_HSTS_SECONDS", default=31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SESSION_COOKIE_SECURE = True
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_SECURE = True
X_FRAME_OPTIONS = "DENY"
