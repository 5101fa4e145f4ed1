"""Production mode: no defaults for secrets, HTTPS everywhere, `check --deploy` clean.

Select it with DJANGO_SETTINGS_MODULE=smarthome.settings.production. It sets PRODUCTION
(SMARTHOME_ENV=production) explicitly, so a settings module of a deployment that imports this one
stays in production whatever its name. Every required variable missing makes the process refuse
to start with ImproperlyConfigured naming it.
"""

from django.core.exceptions import ImproperlyConfigured

from smarthome.settings.base import *  # noqa: F403
from smarthome.settings.base import (
    CACHES,
    CELERY_BROKER_URL,
    DATABASES,
    REDIS_URL,
    env,
    refuse_missing_production_variables,
)
from smarthome.settings.datastores import database_tls_problem, redis_tls_problem

if env.str("SMARTHOME_ENV", default="production") != "production":
    raise ImproperlyConfigured(
        "smarthome.settings.production with SMARTHOME_ENV=" + env.str("SMARTHOME_ENV") + ": unset it or say production"
    )
SMARTHOME_ENV = "production"
PRODUCTION = True

refuse_missing_production_variables()

# The data stores are reached over TLS unless they are on this machine (settings/datastores.py).
_tls_problems = [
    problem
    for problem in (
        *(database_tls_problem(database) for database in DATABASES.values()),
        redis_tls_problem("REDIS_URL", REDIS_URL),
        redis_tls_problem("CELERY_BROKER_URL", CELERY_BROKER_URL),
        *(redis_tls_problem(f"CACHES[{name!r}]", str(cache.get("LOCATION", ""))) for name, cache in CACHES.items()
          if cache.get("BACKEND", "").endswith("RedisCache")),
    )
    if problem
]
if _tls_problems:
    raise ImproperlyConfigured("production refuses unencrypted data stores: " + "; ".join(_tls_problems))

DEBUG = False
SECRET_KEY = env.str("DJANGO_SECRET_KEY")
if len(SECRET_KEY) < 50 or SECRET_KEY.startswith(("dev-only", "django-insecure")):
    raise ImproperlyConfigured("DJANGO_SECRET_KEY must be a random value of at least 50 characters")
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS")
PSEUDONYM_KEY = env.str("PSEUDONYM_KEY")
SEARCH_INDEX_KEY = env.str("SEARCH_INDEX_KEY")

# A proxy in front is believed only when it authenticates its hop (core/http/proxy.py).
PROXY_AUTH_SECRET = env.str("PROXY_AUTH_SECRET", default="")
if TRUSTED_PROXY_CIDRS and len(PROXY_AUTH_SECRET) < 32:  # noqa: F405
    raise ImproperlyConfigured(
        "TRUSTED_PROXY_CIDRS is set: production settings refuse to start without PROXY_AUTH_SECRET "
        "(at least 32 random characters, the value nginx sends in X-Proxy-Auth)"
    )
if OAUTH2_PROVIDER["OIDC_ISS_ENDPOINT"] and not OAUTH2_PROVIDER["OIDC_ISS_ENDPOINT"].startswith("https://"):  # noqa: F405
    raise ImproperlyConfigured("OAUTH_ISSUER_URL must be the public https:// origin of the service")

if not IDENTITY_PUBLIC_URL.startswith("https://"):  # noqa: F405
    raise ImproperlyConfigured(
        "IDENTITY_PUBLIC_URL must be the public https:// origin residents reach the service at "
        "(invitation links and the identity provider's redirect URI are built on it)"
    )

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
LANGUAGE_COOKIE_SECURE = True
X_FRAME_OPTIONS = "DENY"
