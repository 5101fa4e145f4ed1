"""Settings shared by every mode; everything comes from the environment.

Defaults are for a developer's single machine (SQLite, no broker, tasks run in-process after
commit). `smarthome.settings.production` removes the defaults of every secret and refuses to
start without them. Every variable is listed with its default in docs/configuration.md.
"""

import zoneinfo
from pathlib import Path

import environ
from csp import constants as csp
from django.core.exceptions import ImproperlyConfigured

from smarthome.schedule import BEAT_SCHEDULE
from smarthome.settings.datastores import redis_ssl_options
from smarthome.settings.pools import POOLS

env = environ.Env()

BASE_DIR = Path(__file__).resolve().parent.parent.parent
# Local state of a developer machine: SQLite file, dev certificates, keys.
VAR_DIR = Path(env.str("SMARTHOME_VAR_DIR", default=str(BASE_DIR / "var")))

# The deployment mode, said explicitly and never guessed from the settings module's name. In
# production every development fallback (a generated key file, a dev-only secret) is refused:
# a missing key stops the process instead of being made up. smarthome.settings.production sets it.
SMARTHOME_ENV = env.str("SMARTHOME_ENV", default="development")
if SMARTHOME_ENV not in ("development", "production"):
    raise ImproperlyConfigured(f"SMARTHOME_ENV must be 'development' or 'production', not {SMARTHOME_ENV!r}")
PRODUCTION = SMARTHOME_ENV == "production"
# What production refuses to start without (smarthome.settings.production checks it too).
PRODUCTION_REQUIRED = [
    "DJANGO_SECRET_KEY",
    "DJANGO_ALLOWED_HOSTS",
    "DATABASE_URL",
    "PSEUDONYM_KEY",
    "SEARCH_INDEX_KEY",
    "FIELD_ENCRYPTION_KEYS",
    "AUDIT_SIGNING_KEY",
    "CONSENT_RECEIPT_SIGNING_KEY",
]


def refuse_missing_production_variables():
    missing = [name for name in PRODUCTION_REQUIRED if not env.str(name, default="")]
    if missing:
        raise ImproperlyConfigured("production settings refuse to start without: " + ", ".join(missing))


if PRODUCTION:
    refuse_missing_production_variables()

DEBUG = env.bool("DJANGO_DEBUG", default=False)
# A development-only key; production.py requires DJANGO_SECRET_KEY.
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="dev-only-not-secret-" + "x" * 40)
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_prometheus",
    "rest_framework",
    "oauth2_provider",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "two_factor",
    "axes",
    "auditlog",
    "csp",
    # our apps, in import order: audit <- partners <- consent <- access
    "audit",
    "partners",
    "consent",
    "access",
    "identity",  # above access: resident sign-in, invitations, the directory (docs/identity.md)
    "masterdata",  # above access and identity: integration API and spreadsheet import (docs/master-data.md)
    "import_export",  # django-import-export: the admin's spreadsheet import and export
    "core",
]

# Which web worker pool this process is (smarthome/settings/pools.py): `public` (residents, OAuth2,
# admin) or `partner` (the partner API behind nginx's mTLS listener). The WSGI entry points say it:
# smarthome.wsgi is the public pool, smarthome.wsgi_partner the partner pool.
SMARTHOME_POOL = env.str("SMARTHOME_POOL", default="public")
if SMARTHOME_POOL not in POOLS:
    raise ImproperlyConfigured(f"SMARTHOME_POOL must be one of {sorted(POOLS)}, not {SMARTHOME_POOL!r}")
MIDDLEWARE = list(POOLS[SMARTHOME_POOL].middleware)
ROOT_URLCONF = POOLS[SMARTHOME_POOL].urlconf
WSGI_APPLICATION = POOLS[SMARTHOME_POOL].wsgi_application
SILENCED_SYSTEM_CHECKS = list(POOLS[SMARTHOME_POOL].silenced_checks)
ASGI_APPLICATION = "smarthome.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- database -------------------------------------------------------------------------------
# SQLite file by default; DATABASE_URL=postgres://... switches to PostgreSQL (psycopg 3).
DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'smarthome.sqlite3'}"),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The one-machine default serves several processes and threads (web, scheduler, tasks run after
    # commit): WAL lets readers run beside the writer; IMMEDIATE transactions take the write lock at
    # BEGIN, so a transaction never fails half-way with "database is locked" when it first writes
    # (SQLite cannot wait for a lock it would need to upgrade to); writers queue for up to the timeout.
    DATABASES["default"].setdefault("OPTIONS", {})
    DATABASES["default"]["OPTIONS"].setdefault("init_command", "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL")
    DATABASES["default"]["OPTIONS"].setdefault("transaction_mode", "IMMEDIATE")
    DATABASES["default"]["OPTIONS"].setdefault("timeout", env.float("SQLITE_BUSY_TIMEOUT_S", default=20.0))
    _sqlite_file = str(DATABASES["default"]["NAME"])
    if _sqlite_file not in ("", ":memory:") and not _sqlite_file.startswith("file:"):
        # the file's directory (var/ on a fresh checkout) exists before the first connection
        Path(_sqlite_file).parent.mkdir(parents=True, exist_ok=True)
elif DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("DATABASE_CONN_MAX_AGE_S", default=60))
    DATABASES["default"].setdefault("CONN_HEALTH_CHECKS", True)
    DATABASES["default"].setdefault("OPTIONS", {})
    DATABASES["default"]["OPTIONS"].setdefault(
        "connect_timeout", env.int("DATABASE_CONNECT_TIMEOUT_S", default=3)
    )
    # The statements hot paths send on every request are prepared on the server
    # (core.prepared_statements); psycopg prepares nothing while this is None (Django's default).
    # Django's own queries stay unprepared either way (client-side binding).
    if env.bool("DATABASE_PREPARED_STATEMENTS", default=True):
        DATABASES["default"]["OPTIONS"].setdefault("prepare_threshold", 2**31 - 1)
    # TLS (libpq options): DATABASE_URL's ?sslmode=...&sslrootcert=... works too; these win.
    # Production refuses a server off loopback without sslmode=verify-full (settings/datastores.py).
    _database_tls = {
        "sslmode": env.str("DATABASE_SSL_MODE", default=""),
        "sslrootcert": env.str("DATABASE_SSL_ROOT_CERT", default=""),
        "sslcert": env.str("DATABASE_SSL_CERT", default=""),
        "sslkey": env.str("DATABASE_SSL_KEY", default=""),
    }
    DATABASES["default"]["OPTIONS"].update({option: value for option, value in _database_tls.items() if value})
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- cache and broker -----------------------------------------------------------------------
# REDIS_URL switches the cache and the Celery broker to Redis. Without it the cache lives in
# the database (shared by every local process) and tasks run in-process after commit.
# CACHE_URL (django-environ syntax, e.g. locmemcache://) overrides the cache alone.
REDIS_URL = env.str("REDIS_URL", default="")
# TLS: a rediss:// URL; the server certificate is always verified (host name included) against
# REDIS_SSL_CA_FILE (empty: the system's CAs); REDIS_SSL_CERT_FILE/KEY_FILE: a client certificate.
# REDIS_SSL_OPTIONS go to every Redis client: the cache, the circuit breaker, /readyz, Celery.
REDIS_SSL_CA_FILE = env.str("REDIS_SSL_CA_FILE", default="")
REDIS_SSL_CERT_FILE = env.str("REDIS_SSL_CERT_FILE", default="")
REDIS_SSL_KEY_FILE = env.str("REDIS_SSL_KEY_FILE", default="")
REDIS_SSL_OPTIONS = redis_ssl_options(
    REDIS_URL, ca_file=REDIS_SSL_CA_FILE, cert_file=REDIS_SSL_CERT_FILE, key_file=REDIS_SSL_KEY_FILE
)
if env.str("CACHE_URL", default=""):
    CACHES = {"default": env.cache("CACHE_URL")}
elif REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "smarthome",
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1, **REDIS_SSL_OPTIONS},
        }
    }
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.db.DatabaseCache",
            "LOCATION": "smarthome_cache",
        }
    }

CELERY_BROKER_URL = REDIS_URL or "memory://"
# kombu would take a rediss:// broker without verifying the server; these options make it verify.
CELERY_BROKER_USE_SSL = REDIS_SSL_OPTIONS or None
CELERY_RESULT_BACKEND = None
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=not REDIS_URL)
CELERY_TASK_EAGER_PROPAGATES = False
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600, "socket_connect_timeout": 2}
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULE = BEAT_SCHEDULE

# --- auth -----------------------------------------------------------------------------------
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    # staff through the directory (only when IDENTITY_LDAP_URI is set, see below)
    "django.contrib.auth.backends.ModelBackend",
    # residents sign in with their phone or e-mail (identity.contacts blind index)
    "identity.backends.ResidentContactBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
CSRF_FAILURE_VIEW = "core.http.problems.csrf_failure"
# Database sessions stored under the SHA-256 of their key (the cookie holds the key).
SESSION_ENGINE = "core.auth.sessions"
LOGIN_URL = "two_factor:login"
LOGIN_REDIRECT_URL = "admin:index"

AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = env.float("AXES_COOLOFF_H", default=1.0)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
# The service's one client-address rule (the trusted proxy hop), not axes' own header parsing.
AXES_CLIENT_IP_CALLABLE = "core.http.client_ip.client_ip"

OAUTH2_PROVIDER = {
    "ACCESS_TOKEN_EXPIRE_SECONDS": env.int("OAUTH_ACCESS_TOKEN_TTL_S", default=300),
    "REFRESH_TOKEN_EXPIRE_SECONDS": env.int("OAUTH_REFRESH_TOKEN_TTL_S", default=30 * 24 * 3600),
    "ROTATE_REFRESH_TOKEN": True,
    "PKCE_REQUIRED": True,
    "REFRESH_TOKEN_REUSE_PROTECTION": True,
    # Native apps redirect to their own scheme (RFC 8252); no plaintext http redirects.
    "ALLOWED_REDIRECT_URI_SCHEMES": ["https", *env.list("OAUTH_APP_REDIRECT_SCHEMES", default=["ru.smarthome.app"])],
    # Every RFC 9700 (OAuth 2.0 Security BCP) recommendation django-oauth-toolkit offers, on.
    "COMPLIANT_BCP_RFC9700_IMPLICIT_GRANT": True,
    "COMPLIANT_BCP_RFC9700_PASSWORD_GRANT": True,
    "COMPLIANT_BCP_RFC9700_PKCE_METHOD": True,
    "COMPLIANT_BCP_RFC9700_ACCESS_TOKEN_TRANSPORT": True,
    "COMPLIANT_BCP_RFC9700_AUTHZ_RESPONSE_ISS": True,
    "COMPLIANT_BCP_RFC9700_TOKEN_STORAGE": True,
    "COMPLIANT_BCP_RFC9700_REFRESH_TOKEN": True,
    "COMPLIANT_BCP_RFC9700_REDIRECT_URI_SCHEME": True,
    "COMPLIANT_BCP_RFC9700_REDIRECT_URI_MATCHING": True,
    "COMPLIANT_BCP_RFC9700_PKCE_REQUIRED": True,
    "SCOPES_BACKEND_CLASS": "core.auth.oauth_scopes.ApplicationScopes",
    # RFC 9207 `iss` of authorisation responses: the public https origin the app talks to. Unset,
    # it is derived from the request (scheme and host as nginx forwarded them over the proxy hop).
    "OIDC_ISS_ENDPOINT": env.str("OAUTH_ISSUER_URL", default=""),
}
# Content-Security-Policy of every page (django-csp): scripts and styles from our own origin only -
# no inline script or style unless it carries the per-response nonce (`request.csp_nonce`), no
# framing, forms post to us (and, after the OAuth consent, redirect to the app's own scheme).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [csp.NONE],
        "script-src": [csp.SELF, csp.NONCE],
        "style-src": [csp.SELF, csp.NONCE],
        "img-src": [csp.SELF, "data:"],
        "font-src": [csp.SELF],
        "connect-src": [csp.SELF],
        "form-action": [
            csp.SELF, *(f"{scheme}:" for scheme in OAUTH2_PROVIDER["ALLOWED_REDIRECT_URI_SCHEMES"]),
        ],
        "frame-ancestors": [csp.NONE],
        "base-uri": [csp.NONE],
        "object-src": [csp.NONE],
    },
}
# Confidential service clients (client id -> scopes), e.g. the gateway introspecting tokens.
OAUTH_SERVICE_CLIENTS = env.dict("OAUTH_SERVICE_CLIENTS", cast={"value": lambda v: v.split(";")}, default={})
# Dotted paths of callables application -> list of scopes (partners register theirs).
OAUTH_SCOPE_RESOLVERS: list[str] = ["partners.authentication.partner_scopes", "masterdata.clients.client_scopes"]
TOKEN_RATE_PER_IP = env.str("TOKEN_RATE_PER_IP", default="30/min")
LOGIN_RATE_PER_IP = env.str("LOGIN_RATE_PER_IP", default="20/min")
# Unknown bearer tokens per client address on the resident API; past it, 429 before the token lookup.
API_BAD_TOKENS_PER_IP = env.str("API_BAD_TOKENS_PER_IP", default="60/min")
# nginx's public listener, per client address (core/nginx.py; rendered by `manage.py nginx_config`):
# requests per second with a burst, and requests in progress at once. Over either: 429 from nginx.
NGINX_PUBLIC_RATE_PER_S = env.int("NGINX_PUBLIC_RATE_PER_S", default=20)
NGINX_PUBLIC_BURST = env.int("NGINX_PUBLIC_BURST", default=40)
NGINX_PUBLIC_CONNECTIONS = env.int("NGINX_PUBLIC_CONNECTIONS", default=20)
# The proxy hop (core/http/proxy.py): X-Forwarded-For/-Proto and X-Client-Cert/-Verify are believed
# only from a peer in TRUSTED_PROXY_CIDRS (or a unix socket) that presents PROXY_AUTH_SECRET in
# X-Proxy-Auth. Without a secret, no forwarded header is believed.
TRUSTED_PROXY_CIDRS = env.list("TRUSTED_PROXY_CIDRS", default=[])
PROXY_AUTH_SECRET = env.str("PROXY_AUTH_SECRET", default="")
# request.is_secure() from the proxy's X-Forwarded-Proto (removed unless the hop is trusted).
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# --- internationalisation -------------------------------------------------------------------
# Russian by default; a browser or API client asking for English (Accept-Language, or the admin's
# language switch, which sets a cookie) gets English. Translations: <app>/locale/ru/LC_MESSAGES/
# django.po and, for the project templates, locale/ (compiled by `make install`; docs/portal.md).
LANGUAGE_CODE = "ru"
LANGUAGES = [("ru", "Русский"), ("en", "English")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
# The language switch's cookie: not readable by scripts, not sent on cross-site requests.
LANGUAGE_COOKIE_HTTPONLY = True
LANGUAGE_COOKIE_SAMESITE = "Lax"
# The time zone the admin portal shows and reads dates and times in (the managers' local time).
PORTAL_TIME_ZONE = env.str("PORTAL_TIME_ZONE", default="Europe/Moscow")
try:
    zoneinfo.ZoneInfo(PORTAL_TIME_ZONE)
except (zoneinfo.ZoneInfoNotFoundError, ValueError) as _error:
    raise ImproperlyConfigured(f"PORTAL_TIME_ZONE is not an IANA time zone: {PORTAL_TIME_ZONE!r}") from _error

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"

# --- API conventions ------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "core.api.authentication.BudgetedOAuth2Authentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PAGINATION_CLASS": "core.api.pagination.StandardPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "core.api.autoschema.ApiAutoSchema",
    "EXCEPTION_HANDLER": "core.http.problems.exception_handler",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "smarthome API",
    "DESCRIPTION": "Resident API (/api/v1/), partner API (/partner/v1/) and the integration API for the "
                   "developer's systems (/integration/v1/) of the smart-home service.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "OAS_VERSION": "3.1.0",
    # /api/schema/ lists the operations of every URLconf named here: one document for both
    # pools' APIs (the public pool serves it)
    "SERVE_URLCONF": [POOLS["public"].urlconf, POOLS["partner"].urlconf],
    # what each operation implies (problems, headers, input rules): core/api/autoschema.py
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "core.api.oauth_schemes.add_bearer_scheme",
        "core.api.schema_links.link_operations",
    ],
    "ENUM_NAME_OVERRIDES": {"MasterDataRecordTypeEnum": "masterdata.models.Entity"},
}

# Largest accepted request body; bigger ones get 413 before any view runs.
REQUEST_BODY_MAX_BYTES = env.int("REQUEST_BODY_MAX_BYTES", default=1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = REQUEST_BODY_MAX_BYTES
# Face photos are the one larger body (multipart); their own limit is checked by that view.
# A master-data batch of up to MASTERDATA_BATCH_MAX records, a spreadsheet of up to MASTERDATA_IMPORT_MAX_ROWS rows.
MASTERDATA_BODY_MAX_BYTES = env.int("MASTERDATA_BODY_MAX_BYTES", default=10 * 1024 * 1024)
REQUEST_BODY_MAX_BYTES_BY_PREFIX = {
    "/api/v1/biometrics/": env.int("FACE_UPLOAD_MAX_BYTES", default=8 * 1024 * 1024),
    "/integration/v1/": MASTERDATA_BODY_MAX_BYTES,
    "/admin/masterdata/import/": MASTERDATA_BODY_MAX_BYTES,
}

# --- observability --------------------------------------------------------------------------
# /metrics answers only callers from these networks or with this bearer token.
METRICS_ALLOWED_CIDRS = env.list("METRICS_ALLOWED_CIDRS", default=["127.0.0.0/8", "::1/128"])
METRICS_BEARER_TOKEN = env.str("METRICS_BEARER_TOKEN", default="")
# The public TLS server certificate (nginx's, PEM with its chain) whose expiry /metrics reports;
# empty: not watched (core/observability/certificates.py).
TLS_SERVER_CERT_FILE = env.str("TLS_SERVER_CERT_FILE", default="")
# /readyz asks each partner whether it answers, all at once, waiting at most this long.
READYZ_PARTNER_TIMEOUT_S = env.float("READYZ_PARTNER_TIMEOUT_S", default=0.5)
# Key that turns user ids into pseudonymous actor refs for logs and audit events.
PSEUDONYM_KEY = env.str("PSEUDONYM_KEY", default="dev-only-pseudonym-key")
# Key of the blind indexes the admin searches encrypted names, phones and plates by (access.search).
SEARCH_INDEX_KEY = env.str("SEARCH_INDEX_KEY", default="dev-only-search-index-key")

LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "request_id": {"()": "core.observability.logging.RequestIdFilter"},
        "redact": {"()": "core.observability.logging.RedactingFilter"},
    },
    "formatters": {
        "json": {"()": "core.observability.logging.JsonFormatter"},
    },
    "handlers": {
        "stdout": {
            "class": "logging.StreamHandler",
            "formatter": "json",
            "filters": ["request_id", "redact"],
        },
        "discard": {"class": "logging.NullHandler"},
    },
    "root": {"handlers": ["stdout"], "level": LOG_LEVEL},
    "loggers": {
        # One JSON line per request comes from smarthome.request; runserver's own lines (the raw
        # request line, query string included) are dropped - with no handler at all, Python's
        # last-resort handler would print its warnings (every 4xx) to stderr.
        "django.server": {"handlers": ["discard"], "propagate": False},
        "django.request": {"level": "ERROR"},
        "django.security.DisallowedHost": {"level": "ERROR"},
        "axes.apps": {"level": "WARNING"},
    },
}

# Answers "which management companies may this staff user see" (see core/security/tenancy.py).
COMPANY_RESOLVER = "access.selectors.staff.company_ids_for_user"
# Answers "which resident is this app user" for every resident API view (core/api/resident.py).
RESIDENT_RESOLVER = "access.selectors.residents.resident_of"

# --- biometrics
FACE_PHOTO_MAX_BYTES = env.int("FACE_PHOTO_MAX_BYTES", default=5 * 1024 * 1024)
FACE_PHOTO_MIN_SIDE_PX = env.int("FACE_PHOTO_MIN_SIDE_PX", default=200)
FACE_PHOTO_MAX_SIDE_PX = env.int("FACE_PHOTO_MAX_SIDE_PX", default=4096)

# --- admin portal ---------------------------------------------------------------------------
# 2FA (django-two-factor-auth over django-otp), lockout page (django-axes), audit-trail masking
# (django-auditlog). The admin site itself is core.portal.site.SmarthomeAdminSite.
OTP_TOTP_ISSUER = env.str("OTP_TOTP_ISSUER", default="smarthome admin")
OTP_TOTP_THROTTLE_FACTOR = 1  # django-otp: each failed token doubles the wait (1 s, 2 s, 4 s, ...)
OTP_STATIC_THROTTLE_FACTOR = 1
TWO_FACTOR_PATCH_ADMIN = False  # our admin site requires OTP itself; no monkeypatching
OTP_ADMIN_HIDE_SENSITIVE_DATA = True  # django-otp's admin never shows keys, QR codes or backup codes
TWO_FACTOR_QR_FACTORY = "qrcode.image.svg.SvgPathImage"  # inline SVG, rendered server-side
TWO_FACTOR_REMEMBER_COOKIE_AGE = None  # every admin login asks for a token
TWO_FACTOR_LOGIN_TIMEOUT = env.int("TWO_FACTOR_LOGIN_TIMEOUT_S", default=600)
# One bilingual page for a locked-out login (admin and resident login alike), status 429.
AXES_LOCKOUT_TEMPLATE = "admin/lockout.html"
AXES_ENABLE_ACCESS_FAILURE_LOG = True
# Encrypted fields are registered with mask_fields; their values never reach the audit trail.
AUDITLOG_MASK_CALLABLE = "core.portal.auditlog_mask.mask_value"

# --- encryption at rest ---------------------------------------------------------------------
# AES-256-GCM field encryption (core/crypto). "kid:base64(32 bytes),kid2:..." - the FIRST
# key encrypts, all keys decrypt. Required in production; elsewhere, when unset, a keyring file
# is generated once at FIELD_ENCRYPTION_KEY_FILE (0600). New key: put it first, then run
# `manage.py rotate_encryption_keys`, then drop the old one.
FIELD_ENCRYPTION_KEYS = env.str("FIELD_ENCRYPTION_KEYS", default="")
FIELD_ENCRYPTION_KEY_FILE = env.str("FIELD_ENCRYPTION_KEY_FILE", default=str(VAR_DIR / "field-keys"))

# --- signing keys
# Consent receipts' Ed25519 key (core.crypto.signing): PEM or base64 of the 32-byte seed; when
# unset outside production, generated once into $SMARTHOME_VAR_DIR/consent-receipt-ed25519.pem.
# Rotation: the new private key here, the old PUBLIC key (base64 raw) added to ..._RETIRED.
CONSENT_RECEIPT_SIGNING_KEY = env.str("CONSENT_RECEIPT_SIGNING_KEY", default="")
CONSENT_RECEIPT_SIGNING_KEY_RETIRED = env.str("CONSENT_RECEIPT_SIGNING_KEY_RETIRED", default="")

# --- partner API (inbound: access decisions, events)
# Per-process caches of what decisions and partner token checks read, kept while the PostgreSQL
# data-version counters are unchanged (core.cache.versioned). Off: every decision loads.
VERSIONED_CACHE = env.bool("VERSIONED_CACHE", default=True)
PARTNER_DECISION_RATE = env.str("PARTNER_DECISION_RATE", default="200/s")  # per partner, e.g. "200/s", "6000/min"
ACCESS_DECISION_ALLOW_TTL_S = env.int("ACCESS_DECISION_ALLOW_TTL_S", default=60)  # how long a partner may cache
ACCESS_DECISION_DENY_TTL_S = env.int("ACCESS_DECISION_DENY_TTL_S", default=10)
# Anomaly thresholds (access.anomalies.DEFAULTS; any subset), JSON: {"max_unknown_credentials": 30, ...}
ACCESS_ANOMALY = env.json("ACCESS_ANOMALY", default={})
# After a normal credentials rotation the previous webhook secrets still verify (inbound) and
# sign (outbound) this long; an emergency rotation drops them at once.
WEBHOOK_PREVIOUS_SECRET_GRACE_S = env.int("WEBHOOK_PREVIOUS_SECRET_GRACE_S", default=24 * 3600)
# After a normal rotation decisions accept plate tokens under the previous plate-token key too,
# at most this long (retired earlier by partner_plate_key_retire once the partner has switched).
PLATE_TOKEN_KEY_OVERLAP_S = env.int("PLATE_TOKEN_KEY_OVERLAP_S", default=7 * 24 * 3600)

# --- partner client and outbox
# Outbound calls to partner platforms (partners/client) and the transactional outbox
# (partners/outbox). Our client certificate for mTLS towards partners; each partner's server
# CA is pinned per partner (Partner.server_ca_pem), else PARTNER_SERVER_CA_FILE (dev CA).
PARTNER_CLIENT_CERT_FILE = env.str("PARTNER_CLIENT_CERT_FILE", default=str(VAR_DIR / "certs" / "smarthome-client.pem"))
PARTNER_CLIENT_KEY_FILE = env.str("PARTNER_CLIENT_KEY_FILE", default=str(VAR_DIR / "certs" / "smarthome-client.key"))
PARTNER_SERVER_CA_FILE = env.str("PARTNER_SERVER_CA_FILE", default=str(VAR_DIR / "certs" / "ca.pem"))
PARTNER_CONNECT_TIMEOUT_S = env.float("PARTNER_CONNECT_TIMEOUT_S", default=2.0)
# Read timeout per operation; PARTNER_READ_TIMEOUT_S="open=5,face_enrol=20" overrides some of them.
PARTNER_READ_TIMEOUT_S = {
    "token": 5.0, "open": 5.0, "webrtc_session": 5.0, "face_enrol": 20.0, "face_delete": 10.0,
    "allowlist": 30.0, "audit": 30.0,
    **env.dict("PARTNER_READ_TIMEOUT_S", cast={"value": float}, default={}),
}
PARTNER_RETRIES = env.int("PARTNER_RETRIES", default=3)  # extra attempts of idempotent operations
PARTNER_BACKOFF_BASE_S = env.float("PARTNER_BACKOFF_BASE_S", default=0.2)
PARTNER_BACKOFF_MAX_S = env.float("PARTNER_BACKOFF_MAX_S", default=5.0)
PARTNER_RATE_LIMIT_MAX_WAIT_S = env.float("PARTNER_RATE_LIMIT_MAX_WAIT_S", default=2.0)
PARTNER_BREAKER_FAIL_MAX = env.int("PARTNER_BREAKER_FAIL_MAX", default=5)
PARTNER_BREAKER_RESET_S = env.float("PARTNER_BREAKER_RESET_S", default=5.0)
PARTNER_TOKEN_REFRESH_MARGIN_S = env.float("PARTNER_TOKEN_REFRESH_MARGIN_S", default=30.0)
OUTBOX_MAX_ATTEMPTS = env.int("OUTBOX_MAX_ATTEMPTS", default=12)
OUTBOX_BACKOFF_BASE_S = env.float("OUTBOX_BACKOFF_BASE_S", default=5.0)
OUTBOX_BACKOFF_MAX_S = env.float("OUTBOX_BACKOFF_MAX_S", default=600.0)
OUTBOX_DISPATCH_BATCH = env.int("OUTBOX_DISPATCH_BATCH", default=500)
# A delivery task may go on with the partner's next due messages, in one transaction, up to this many
# (1: one message per task - the default: batches measured no faster, docs/benchmarks.md).
OUTBOX_DELIVERY_BATCH = env.int("OUTBOX_DELIVERY_BATCH", default=1)
# A dispatched message whose task has not finished within this lease is dispatched again.
OUTBOX_REDISPATCH_AFTER_S = env.float("OUTBOX_REDISPATCH_AFTER_S", default=120.0)
# How often beat re-dispatches due outbox messages (the table itself is in smarthome/schedule.py).
OUTBOX_DISPATCH_INTERVAL_S = env.float("OUTBOX_DISPATCH_INTERVAL_S", default=15.0)

# --- audit (audit/conf.py reads these; meaning and units in docs/audit.md)
# The partner-log fetcher the audit app's reconciliation uses (GET /v1/audit of each partner).
AUDIT_PARTNER_LOG_FETCHER = env.str(
    "AUDIT_PARTNER_LOG_FETCHER", default="partners.client.audit_log.partner_log_fetcher"
)
# The buildings and partners the audit export form offers a staff user (their companies' own).
AUDIT_SCOPE_CHOICES = "access.selectors.portal.audit_scope_choices"
AUDIT_SIGNING_KEY = env.str("AUDIT_SIGNING_KEY", default="")  # required in production; dev: a generated key file
AUDIT_VERIFY_KEYS = env.str("AUDIT_VERIFY_KEYS", default="")
AUDIT_SEAL_BATCH = env.int("AUDIT_SEAL_BATCH", default=100_000)
AUDIT_SEAL_GAP_TTL_S = env.float("AUDIT_SEAL_GAP_TTL_S", default=86_400.0)
AUDIT_EXPORT_GRACE_S = env.float("AUDIT_EXPORT_GRACE_S", default=60.0)
AUDIT_RECONCILE_SKEW_S = env.float("AUDIT_RECONCILE_SKEW_S", default=5.0)
AUDIT_REFUSAL_BURST_PER_MIN = env.int("AUDIT_REFUSAL_BURST_PER_MIN", default=100)

# --- resident API
OPEN_RATE_PER_MIN = env.int("OPEN_RATE_PER_MIN", default=6)  # per user per device
# The portal's remote open for a courier or a visitor, per staff member (all devices): "10/min".
STAFF_OPEN_RATE = env.str("STAFF_OPEN_RATE", default="10/min")
OPEN_REQUEST_STALE_S = env.int("OPEN_REQUEST_STALE_S", default=30)  # a pending open a retry may take over
API_RATE_PER_MIN = env.int("API_RATE_PER_MIN", default=120)  # per user
GUEST_PASSES_ACTIVE_MAX = env.int("GUEST_PASSES_ACTIVE_MAX", default=5)
GUEST_PASS_MAX_DAYS = env.int("GUEST_PASS_MAX_DAYS", default=7)
# How long residents' activity records are kept (access.services.retention; 0: until the resident is erased).
OPEN_REQUEST_RETENTION_DAYS = env.int("OPEN_REQUEST_RETENTION_DAYS", default=365)
NOTIFICATION_RETENTION_DAYS = env.int("NOTIFICATION_RETENTION_DAYS", default=90)
GUEST_PASS_RETENTION_DAYS = env.int("GUEST_PASS_RETENTION_DAYS", default=30)  # after the pass ended
# django-oauth-toolkit's swappable models, named so migrations that point at them resolve.
OAUTH2_PROVIDER_APPLICATION_MODEL = "oauth2_provider.Application"
OAUTH2_PROVIDER_ACCESS_TOKEN_MODEL = "oauth2_provider.AccessToken"  # noqa: S105
OAUTH2_PROVIDER_REFRESH_TOKEN_MODEL = "oauth2_provider.RefreshToken"  # noqa: S105
OAUTH2_PROVIDER_ID_TOKEN_MODEL = "oauth2_provider.IDToken"  # noqa: S105
OAUTH2_PROVIDER_GRANT_MODEL = "oauth2_provider.Grant"

# --- identity: resident sign-in, invitations, staff directory (docs/identity.md) --------------
# Where residents reach this service: the base of invitation and reset links, and of the
# redirect URI registered at the OpenID Connect provider.
IDENTITY_PUBLIC_URL = env.str("IDENTITY_PUBLIC_URL", default="http://127.0.0.1:8000").rstrip("/")
# The residents' OpenID Connect provider (Keycloak). Empty issuer = residents sign in here with a
# password set through an invitation.
IDENTITY_OIDC_ISSUER = env.str("IDENTITY_OIDC_ISSUER", default="").rstrip("/")
IDENTITY_OIDC_CLIENT_ID = env.str("IDENTITY_OIDC_CLIENT_ID", default="")
IDENTITY_OIDC_CLIENT_SECRET = env.str("IDENTITY_OIDC_CLIENT_SECRET", default="")
IDENTITY_OIDC_SCOPES = env.str("IDENTITY_OIDC_SCOPES", default="openid")
# "" links by (issuer, sub) only; "phone_number" or "email" also links a first login to the one
# resident with that verified phone / e-mail.
IDENTITY_OIDC_LINK_CLAIM = env.str("IDENTITY_OIDC_LINK_CLAIM", default="")
# acr values accepted for the scopes that open doors; empty = any.
IDENTITY_OIDC_DOOR_ACR = env.list("IDENTITY_OIDC_DOOR_ACR", default=[])
IDENTITY_OIDC_DOOR_SCOPES = env.list("IDENTITY_OIDC_DOOR_SCOPES", default=["doors:open", "barriers:open"])
IDENTITY_OIDC_CA_FILE = env.str("IDENTITY_OIDC_CA_FILE", default="")  # empty = the system's CAs
IDENTITY_OIDC_TIMEOUT_S = env.float("IDENTITY_OIDC_TIMEOUT_S", default=5.0)
IDENTITY_OIDC_METADATA_TTL_S = env.int("IDENTITY_OIDC_METADATA_TTL_S", default=3600)
IDENTITY_OIDC_JWKS_MIN_REFRESH_S = env.int("IDENTITY_OIDC_JWKS_MIN_REFRESH_S", default=60)
IDENTITY_OIDC_CLOCK_SKEW_S = env.int("IDENTITY_OIDC_CLOCK_SKEW_S", default=60)
# Invitations and password resets.
IDENTITY_INVITATION_TTL_H = env.int("IDENTITY_INVITATION_TTL_H", default=72)
IDENTITY_RESET_TTL_MIN = env.int("IDENTITY_RESET_TTL_MIN", default=30)
IDENTITY_RESET_RATE_PER_IP = env.str("IDENTITY_RESET_RATE_PER_IP", default="10/hour")
IDENTITY_SMS_BACKEND = env.str("IDENTITY_SMS_BACKEND", default="identity.channels.ConsoleSmsGateway")
IDENTITY_SMS_FILE_DIR = env.str("IDENTITY_SMS_FILE_DIR", default=str(VAR_DIR / "sms"))
# Sign-in audit: failures beyond this many per (action, reason, client address, minute) are
# counted into one summary event instead of one event each.
IDENTITY_AUDIT_FLOOD_PER_MIN = env.int("IDENTITY_AUDIT_FLOOD_PER_MIN", default=10)
# E-mail (Django's SMTP backend in production): EMAIL_URL=smtp+tls://user:password@host:587
_email = env.email_url("EMAIL_URL", default="consolemail://")
EMAIL_BACKEND = _email["EMAIL_BACKEND"]
EMAIL_HOST = _email.get("EMAIL_HOST") or "localhost"
EMAIL_PORT = _email.get("EMAIL_PORT") or 25
EMAIL_HOST_USER = _email.get("EMAIL_HOST_USER") or ""
EMAIL_HOST_PASSWORD = _email.get("EMAIL_HOST_PASSWORD") or ""
EMAIL_USE_TLS = _email.get("EMAIL_USE_TLS", False)
EMAIL_USE_SSL = _email.get("EMAIL_USE_SSL", False)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="smarthome <no-reply@localhost>")
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT_S", default=10)

# Staff through the directory (LDAP / Active Directory, django-auth-ldap). Empty URI = off.
IDENTITY_LDAP_URI = env.str("IDENTITY_LDAP_URI", default="")
IDENTITY_LDAP_BIND_DN = env.str("IDENTITY_LDAP_BIND_DN", default="")
IDENTITY_LDAP_BIND_PASSWORD = env.str("IDENTITY_LDAP_BIND_PASSWORD", default="")
IDENTITY_LDAP_USER_BASE = env.str("IDENTITY_LDAP_USER_BASE", default="")
IDENTITY_LDAP_USER_FILTER = env.str("IDENTITY_LDAP_USER_FILTER", default="(sAMAccountName=%(user)s)")
IDENTITY_LDAP_GROUP_BASE = env.str("IDENTITY_LDAP_GROUP_BASE", default="")
# nested_ad (Active Directory, nested groups), ad, group_of_names, nested_group_of_names, posix
IDENTITY_LDAP_GROUP_TYPE = env.str("IDENTITY_LDAP_GROUP_TYPE", default="nested_ad")
# {"<role>": "<group DN>"} for the roles of core.security.roles, and
# {"<group DN>": ["<management company name or id>", ...]} for company memberships (JSON).
IDENTITY_LDAP_ROLE_GROUPS = env.json("IDENTITY_LDAP_ROLE_GROUPS", default={})
IDENTITY_LDAP_COMPANY_GROUPS = env.json("IDENTITY_LDAP_COMPANY_GROUPS", default={})
IDENTITY_LDAP_START_TLS = env.bool("IDENTITY_LDAP_START_TLS", default=False)
IDENTITY_LDAP_CA_FILE = env.str("IDENTITY_LDAP_CA_FILE", default="")
IDENTITY_LDAP_TIMEOUT_S = env.int("IDENTITY_LDAP_TIMEOUT_S", default=5)
if IDENTITY_LDAP_URI:
    AUTHENTICATION_BACKENDS.insert(1, "identity.directory.DirectoryBackend")

# --- master data: the integration API for the developer's systems, the admin's spreadsheet import
# (docs/master-data.md). Which OAuth2 service clients may write which companies, by the source's ids:
# {"<client id>": {"source": "tenant-core", "companies": ["<source company id>", ...]}} (JSON).
MASTERDATA_CLIENTS = env.json("MASTERDATA_CLIENTS", default={})
MASTERDATA_BATCH_MAX = env.int("MASTERDATA_BATCH_MAX", default=10_000)  # records per request
MASTERDATA_CHUNK_SIZE = env.int("MASTERDATA_CHUNK_SIZE", default=500)  # records looked up and applied together
# A residency received from a source (or imported) comes with a grant for its whole building, held
# through the residency (it ends with the move-out).
MASTERDATA_MOVE_IN_GRANT = env.bool("MASTERDATA_MOVE_IN_GRANT", default=True)
# Rows per spreadsheet import.
MASTERDATA_IMPORT_MAX_ROWS = env.int("MASTERDATA_IMPORT_MAX_ROWS", default=50_000)
# django-import-export: an exported cell starting with "=" loses it (no formula injection into the
# manager's spreadsheet program).
IMPORT_EXPORT_ESCAPE_FORMULAE_ON_EXPORT = True
