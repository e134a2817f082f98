"""Settings of the whole project: one module, driven by environment variables.

Two modes:
- embedded (default, `DJANGO_ENV=demo`): SQLite file under var/, in-memory channel layer,
  local-memory cache, e-mail to the console; used by `make demo` and the tests.
- production (`DJANGO_ENV=production`): SECRET_KEY and ALLOWED_HOSTS are required; with
  DATABASE_URL (PostgreSQL) and REDIS_URL (channel layer + cache) it scales out to several
  daphne workers.
See README.md, section "Configuration", for every variable.
"""

import os
import secrets
from datetime import timedelta
from pathlib import Path

import dj_database_url
from csp.constants import NONE, SELF
from django.utils.translation import gettext_lazy as _

from config.env import env_bool, env_choice, env_file, env_int, env_list, env_str, env_url

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("VAR_DIR", str(BASE_DIR / "var")))

DJANGO_ENV = env_choice("DJANGO_ENV", "demo", ("demo", "production"))
PRODUCTION = DJANGO_ENV == "production"
DEBUG = env_bool("DJANGO_DEBUG", False)
if PRODUCTION and DEBUG:
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured(
        "DJANGO_DEBUG ne peut pas être activé en production (les pages d'erreur montreraient des données "
        "confidentielles). / DJANGO_DEBUG cannot be on in production."
    )


def _secret_key() -> str:
    key = env_str("SECRET_KEY", required=PRODUCTION and not DEBUG)
    if key:
        return key
    # Embedded mode: one random key per installation, kept under var/ (never a shared default).
    path = VAR_DIR / "secret_key"
    if path.exists():
        return path.read_text().strip()
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(50)
    path.write_text(key)
    path.chmod(0o600)
    return key


SECRET_KEY = _secret_key()
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", [] if PRODUCTION else ["127.0.0.1", "localhost", "testserver"])
if PRODUCTION and not ALLOWED_HOSTS:
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured("ALLOWED_HOSTS est obligatoire en production / is required in production.")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "daphne",  # before staticfiles: its runserver serves ASGI (daphne.E001)
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_fsm",
    "viewflow",
    "viewflow.workflow",
    "auditlog",
    "dsfr",
    "widget_tweaks",
    "django_htmx",
    "csp",
    "axes",
    "casework",
    "workflows",
    "notifications",
    "audit",
    "cockpit",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # Cache-Control: private, no-store on every response that used the session (static files,
    # answered by WhiteNoise above, stay cacheable).
    "casework.middleware.PrivateCacheMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "casework.middleware.FrenchFirstLocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    # The actor (and address) of every audit entry written during the request.
    "auditlog.middleware.AuditlogMiddleware",
    "casework.middleware.CharterMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    # Last, as django-axes asks: answers a locked-out sign-in with its own page.
    "axes.middleware.AxesMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]
# --- Audit trail (audit/) -------------------------------------------------------------------------
AUDITLOG_LOGENTRY_MODEL = "audit.AuditEntry"
# auditlog's own migrations would still create its (swapped-out) table, whose foreign key to the
# content types then blocks emptying the database; its model is replaced, so it needs no migration.
MIGRATION_MODULES = {"auditlog": None}
AUDITLOG_STORE_JSON_CHANGES = True
# Key of the audit chains' HMAC (audit/chain.py). Keep it stable and apart from the database: an
# entry's hash can only be recomputed with it. Required in production, and distinct from SECRET_KEY
# (rotating SECRET_KEY must not make the whole trail unverifiable); the demo falls back to
# SECRET_KEY. To rotate it, move the old key to AUDIT_CHAIN_KEY_FALLBACKS: entries sealed with it
# still verify, new ones are sealed with the new key.
AUDIT_CHAIN_KEY = env_str("AUDIT_CHAIN_KEY", "", required=PRODUCTION)
AUDIT_CHAIN_KEY_FALLBACKS = env_list("AUDIT_CHAIN_KEY_FALLBACKS", [])
if PRODUCTION and (len(AUDIT_CHAIN_KEY) < 32 or AUDIT_CHAIN_KEY == SECRET_KEY):
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured(
        "AUDIT_CHAIN_KEY doit compter au moins 32 caractères et différer de SECRET_KEY. "
        "/ AUDIT_CHAIN_KEY must be at least 32 characters long and differ from SECRET_KEY."
    )
# The audit chains' heads anchored outside the database (audit.chain.anchor_heads): the background
# loop appends a line per chain whose head moved, at most a minute apart, signed with the chain's
# key; `audit_verify` checks the latest. Point it at an append-only file (chattr +a) or one copied
# off the host; "off" for none (the newest entries could then be deleted unseen).
AUDIT_ANCHOR_PATH = env_file("AUDIT_ANCHOR_PATH", str(VAR_DIR / "audit-anchors.log"))
# Retention of the audit trail, in days (manage.py purge_audit; docs/gdpr.md): accesses one year
# (the CNIL's recommendation on logging: 6 months to 1 year), changes six years (the five-year
# limitation period of civil actions, art. 2224 of the Code civil, plus the evaluation of the pilot).
AUDIT_ACCESS_RETENTION_DAYS = env_int("AUDIT_ACCESS_RETENTION_DAYS", 365, minimum=1, maximum=36500)
AUDIT_CHANGE_RETENTION_DAYS = env_int("AUDIT_CHANGE_RETENTION_DAYS", 2190, minimum=1, maximum=36500)
# Days after its closure (closed, refused or withdrawn) before a case's free text and its company's
# contacts are wiped (manage.py anonymise_closed_cases): three years, as the CNIL recommends for
# the data of a business relationship after its end.
CASE_RETENTION_DAYS = env_int("CASE_RETENTION_DAYS", 1095, minimum=1, maximum=36500)

# viewflow would append its own middlewares (Material UI site, Turbo); we do not use that UI.
VIEWFLOW = {"AUTOREGISTER": False}

ROOT_URLCONF = "config.urls"
ASGI_APPLICATION = "config.asgi.application"
WSGI_APPLICATION = None

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "casework.context_processors.roles",
                "workflows.context_processors.tasks",
                "notifications.context_processors.inbox",
            ],
        },
    },
]
FORM_RENDERER = "dsfr.forms.DsfrDjangoTemplates"

# --- Databases ---------------------------------------------------------------------------------
DATABASE_URL = env_url("DATABASE_URL", ("postgres", "postgresql", "sqlite"))
# PostgreSQL's connections come from a pool per process (Django's psycopg pool): daphne runs each
# request's code in a thread of its own, so a connection kept by a thread (CONN_MAX_AGE > 0) is
# never reused and they pile up until PostgreSQL refuses new ones. A request takes a connection
# of the pool at its first query and gives it back at its end; when none is free within
# DATABASE_POOL_TIMEOUT seconds, it gets the 503 page (config/errors.py). Parsed in every mode, so
# that a malformed value stops start-up even where it has no effect.
DATABASE_POOL = env_bool("DATABASE_POOL", True)
DATABASE_POOL_MIN_SIZE = env_int("DATABASE_POOL_MIN_SIZE", 2, minimum=0, maximum=1000)
DATABASE_POOL_MAX_SIZE = env_int("DATABASE_POOL_MAX_SIZE", 10, minimum=1, maximum=1000)
DATABASE_POOL_TIMEOUT = env_int("DATABASE_POOL_TIMEOUT", 10, minimum=1, maximum=300)
if DATABASE_POOL_MIN_SIZE > DATABASE_POOL_MAX_SIZE:
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured(
        "DATABASE_POOL_MIN_SIZE ne peut pas dépasser DATABASE_POOL_MAX_SIZE. / "
        "DATABASE_POOL_MIN_SIZE cannot exceed DATABASE_POOL_MAX_SIZE."
    )
if DATABASE_URL:
    # No persistent connections (CONN_MAX_AGE 0), with the pool or without it: each request gives
    # its connection back (to the pool, or closes it) when it ends.
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=0, conn_health_checks=True)}
    if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        _options = DATABASES["default"].setdefault("OPTIONS", {})
        if env_bool("DATABASE_PREPARED_STATEMENTS", True):
            # Parameters bound by the server, and a statement run 5 times on a connection kept as
            # a prepared statement: PostgreSQL no longer parses and plans it each time. Measured on
            # a partner's acceptance (bench/write_path, docs/performance.md): database time 16 ->
            # 8 ms. Prepared statements belong to a connection: a pooled connection keeps them
            # from one request to the next. Off (DATABASE_PREPARED_STATEMENTS=0) behind a pooler
            # that cannot keep prepared statements (PgBouncer in transaction mode before 1.21):
            # Django's default, client-side binding.
            _options.update(server_side_binding=True, prepare_threshold=5)
        if DATABASE_POOL:
            # Off (DATABASE_POOL=0) behind PgBouncer, which is then the pool: each request opens
            # and closes its connection to it.
            _options["pool"] = {
                "min_size": DATABASE_POOL_MIN_SIZE,
                "max_size": DATABASE_POOL_MAX_SIZE,
                "timeout": DATABASE_POOL_TIMEOUT,
            }
else:
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": env_str("SQLITE_PATH", str(VAR_DIR / "db.sqlite3")),
        }
    }
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets readers work during a write; IMMEDIATE takes the write lock at BEGIN, which is what
    # serialises concurrent writers on SQLite (select_for_update is a no-op there).
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;",
    }
    # The test database in a file, not in memory: a real server started by the end-to-end tests
    # (daphne, another process) opens the same database. One file per test run and xdist worker
    # (two runs at once do not share it); Django deletes it at the end of the run. Measured: the
    # suite is no slower than in memory.
    _run = env_str("PYTEST_XDIST_TESTRUNUID", "")[:12] or str(os.getpid())
    DATABASES["default"]["TEST"] = {
        "NAME": str(VAR_DIR / f"test-{_run}-{env_str('PYTEST_XDIST_WORKER', 'main')}.sqlite3")
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache and channel layer -------------------------------------------------------------------
REDIS_URL = env_url("REDIS_URL", ("redis", "rediss", "unix"))
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
    _channel_keys = env_list("CHANNEL_ENCRYPTION_KEYS", [])
    if PRODUCTION and not _channel_keys:
        from django.core.exceptions import ImproperlyConfigured

        raise ImproperlyConfigured(
            "CHANNEL_ENCRYPTION_KEYS est obligatoire en production avec REDIS_URL (messages chiffrés dans "
            "Redis). / CHANNEL_ENCRYPTION_KEYS is required in production with REDIS_URL."
        )
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "notifications.layer.RedisChannelLayer",
            "CONFIG": {
                # redis-py ≥ 6 reads with a 5 s socket timeout by default, the very length of the
                # layer's blocking receive (BZPOPMIN, 5 s): under load the read timed out first and
                # killed the consumer (seen in `make bench`). Reads must outlast the blocking receive.
                "hosts": [{"address": REDIS_URL, "socket_timeout": 15, "socket_connect_timeout": 5}],
                # Parallel test workers (pytest-xdist) share one Redis: one prefix each, or a
                # worker's user.1 would hear another's.
                "prefix": env_str("CHANNEL_PREFIX", "tds") + env_str("PYTEST_XDIST_WORKER", ""),
                # Not shorter than daphne's websocket_timeout (86,400 s by default): a socket must
                # not silently leave its group while it is still open.
                "group_expiry": 86400,
                **({"symmetric_encryption_keys": _channel_keys} if _channel_keys else {}),
            },
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
# Notification sockets one user may hold open at once (one per open page); one more is accepted then
# closed with 4429 (notifications.quota: counted in Redis across processes, else in the process).
WS_MAX_SOCKETS_PER_USER = env_int("WS_MAX_SOCKETS_PER_USER", 20, minimum=1, maximum=1000)

# --- Authentication ----------------------------------------------------------------------------
AUTH_USER_MODEL = "casework.User"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"
# Sign-in throttling (django-axes): after AXES_FAILURE_LIMIT failed attempts for one account from
# one address, that pair is locked out for AXES_COOLOFF_MINUTES (a successful sign-in resets it).
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env_int("AXES_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("AXES_COOLOFF_MINUTES", 15, minimum=1))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
# Every failure is also logged (axes' AccessFailureLog, any address) for the throttle per account:
# after LOGIN_ACCOUNT_FAILURE_LIMIT failures of one account in 24 h from all addresses together,
# each further attempt waits 1, 2, 4... minutes, at most LOGIN_ACCOUNT_MAX_DELAY_MINUTES, except from
# an address the account signed in from in the last 30 days (casework.login_throttle).
AXES_ENABLE_ACCESS_FAILURE_LOG = True
LOGIN_ACCOUNT_FAILURE_LIMIT = env_int("LOGIN_ACCOUNT_FAILURE_LIMIT", 10, minimum=1, maximum=1000)
LOGIN_ACCOUNT_MAX_DELAY_MINUTES = env_int("LOGIN_ACCOUNT_MAX_DELAY_MINUTES", 15, minimum=1, maximum=1440)
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
SESSION_COOKIE_AGE = env_int("SESSION_COOKIE_AGE", 12 * 3600, minimum=300)
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_SECURE = PRODUCTION
CSRF_COOKIE_SECURE = PRODUCTION
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# Content security policy (django-csp), in every mode so that a violation shows up in the demo too:
# scripts, styles, images and fonts from this site only, no inline script or style, no framing.
# The notifications' WebSocket is on this host: `'self'` covers ws/wss of the same host (CSP 3).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [NONE],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    }
}
if PRODUCTION:
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000, minimum=0)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# --- Internationalisation ----------------------------------------------------------------------
LANGUAGE_CODE = "fr"
LANGUAGES = [("fr", "Français"), ("en", "English")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = "Europe/Paris"
USE_I18N = True
USE_TZ = True

# --- Static files ------------------------------------------------------------------------------
STATIC_URL = "/static/"
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(VAR_DIR / "staticfiles")))
if not PRODUCTION:
    STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # whitenoise warns when it is missing
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True  # embedded mode serves straight from the apps, without collectstatic

# --- E-mail ------------------------------------------------------------------------------------
EMAIL_MODE = env_choice("EMAIL_MODE", "console", ("console", "file", "smtp"))
EMAIL_BACKEND = {
    "console": "django.core.mail.backends.console.EmailBackend",
    "file": "django.core.mail.backends.filebased.EmailBackend",
    "smtp": "django.core.mail.backends.smtp.EmailBackend",
}[EMAIL_MODE]
EMAIL_FILE_PATH = env_str("EMAIL_FILE_PATH", str(VAR_DIR / "mails"))
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25, minimum=1, maximum=65535)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
# Seconds each SMTP operation may wait: a server that accepts and never answers must not stall the loop.
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 10, minimum=1, maximum=300)
# Seconds an outbox row stays claimed by the worker sending it; a worker killed mid-send leaves a
# claim that expires after this, and the e-mail goes out again (same Message-ID).
OUTBOX_CLAIM_TIMEOUT = env_int("OUTBOX_CLAIM_TIMEOUT", 120, minimum=2, maximum=86400)
if OUTBOX_CLAIM_TIMEOUT < 2 * EMAIL_TIMEOUT:
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured(
        "OUTBOX_CLAIM_TIMEOUT doit valoir au moins deux fois EMAIL_TIMEOUT. / "
        "OUTBOX_CLAIM_TIMEOUT must be at least twice EMAIL_TIMEOUT."
    )
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "territoires-de-solutions@localhost")

# --- Logging -----------------------------------------------------------------------------------
LOG_LEVEL = env_choice("LOG_LEVEL", "INFO", ("DEBUG", "INFO", "WARNING", "ERROR"))
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {"daphne": {"level": "WARNING"}},
}

# --- Product settings --------------------------------------------------------------------------
SITE_TITLE = _("Territoires de solutions")
# Version of the confidentiality charter every user must accept before seeing any case.
CONFIDENTIALITY_CHARTER_VERSION = "2026-11"
# Version of the consent text a company agrees to when its data is shared among partners.
COMPANY_CONSENT_TEXT_VERSION = "2026-11"
CASE_LIST_PAGE_SIZE = env_int("CASE_LIST_PAGE_SIZE", 25, minimum=5, maximum=200)
# Run the timer dispatcher (response deadlines) in a thread of the server process: make demo sets it;
# production runs `manage.py run_timers` as a separate process instead.
TIMERS_IN_PROCESS = env_bool("TIMERS_IN_PROCESS", False)
TIMERS_INTERVAL = env_int("TIMERS_INTERVAL", 30, minimum=1, maximum=3600)
# Address of the site in e-mails (links to the cases and requests).
SITE_URL = env_url("SITE_URL", ("http", "https")) or "http://127.0.0.1:8000"
if PRODUCTION and not env_str("SITE_URL"):
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured(
        "SITE_URL est obligatoire en production (liens des courriels). / SITE_URL is required."
    )
# Local hour from which the daily digest of notifications is sent.
DIGEST_HOUR = env_int("DIGEST_HOUR", 7, minimum=0, maximum=23)

# django-dsfr: mark optional fields rather than required ones (current DSFR guidance).
DSFR_MARK_OPTIONAL_FIELDS = True
# Days the former referent keeps read access to a case after a handover.
FORMER_REFERENT_ACCESS_DAYS = env_int("FORMER_REFERENT_ACCESS_DAYS", 30, minimum=0, maximum=365)
