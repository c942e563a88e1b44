"""All settings, derived from the validated environment (see :mod:`config.env`)."""

from __future__ import annotations

import contextlib
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import dj_database_url

from config.env import BASE_DIR, load_env
from config.logging import build_logging

ENV = load_env()

DEBUG = ENV.DEBUG
SECRET_KEY = ENV.secret_key()
ALLOWED_HOSTS = ENV.ALLOWED_HOSTS
CSRF_TRUSTED_ORIGINS = ENV.CSRF_TRUSTED_ORIGINS
EMBEDDED = ENV.embedded
EMBEDDED_WORKER = ENV.run_embedded_worker
EMBEDDED_WORKER_CONCURRENCY = ENV.EMBEDDED_WORKER_CONCURRENCY
DATA_DIR = ENV.DATA_DIR
TRUST_PROXY_HEADERS = ENV.TRUST_PROXY_HEADERS

INSTALLED_APPS = [
	"daphne",
	"django.contrib.admin",
	"django.contrib.auth",
	"django.contrib.contenttypes",
	"django.contrib.sessions",
	"django.contrib.messages",
	"whitenoise.runserver_nostatic",
	"django.contrib.staticfiles",
	"rest_framework",
	"drf_spectacular",
	"graphene_django",
	"channels",
	"guardian",
	"simple_history",
	"workflows",
	"connectors",
	"designer",
	"analytics",
]

MIDDLEWARE = [
	"workflows.middleware.RequestContextMiddleware",
	"django.middleware.security.SecurityMiddleware",
	"whitenoise.middleware.WhiteNoiseMiddleware",
	"django.contrib.sessions.middleware.SessionMiddleware",
	"django.middleware.common.CommonMiddleware",
	"django.middleware.csrf.CsrfViewMiddleware",
	"django.contrib.auth.middleware.AuthenticationMiddleware",
	"workflows.middleware.TenantMiddleware",
	"django.contrib.messages.middleware.MessageMiddleware",
	"django.middleware.clickjacking.XFrameOptionsMiddleware",
	"simple_history.middleware.HistoryRequestMiddleware",
]

ROOT_URLCONF = "config.urls"
ASGI_APPLICATION = "config.asgi.application"
WSGI_APPLICATION = "config.wsgi.application"

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
				"workflows.context_processors.tenancy",
			],
		},
	},
]

# --- Database -------------------------------------------------------------------------


def _database(url: str | None) -> dict[str, Any]:
	if url is None:
		DATA_DIR.mkdir(parents=True, exist_ok=True)
		url = f"sqlite:///{DATA_DIR / 'apg.sqlite3'}"
	config: dict[str, Any] = dict(dj_database_url.parse(url))
	if config["ENGINE"] == "django.db.backends.sqlite3":
		# WAL lets readers run beside the one writer; IMMEDIATE takes the write lock at
		# BEGIN so two writers queue on the busy timeout instead of failing mid-transaction
		# with "database is locked".
		config["OPTIONS"] = {
			"transaction_mode": "IMMEDIATE",
			"timeout": 20,
			"init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;",
		}
	else:
		options = dict(config.get("OPTIONS") or {})
		if ENV.DATABASE_POOL_MAX_SIZE > 0:
			options["pool"] = {
				"min_size": min(ENV.DATABASE_POOL_MIN_SIZE, ENV.DATABASE_POOL_MAX_SIZE),
				"max_size": ENV.DATABASE_POOL_MAX_SIZE,
				"timeout": 10,
			}
			config["CONN_MAX_AGE"] = 0
		config["OPTIONS"] = options
		config["CONN_HEALTH_CHECKS"] = ENV.DATABASE_POOL_MAX_SIZE == 0
	return config


DATABASES = {"default": _database(ENV.DATABASE_URL)}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: cache, channel layer, broker ---------------------------------------------


def redis_channel_layer(url: str) -> dict[str, Any]:
	"""The channel layer over Redis: pub/sub, so a group message is one PUBLISH.

	Each Daphne process subscribes once to a group any of its connections is in and hands a
	message to those connections itself (the list-based ``RedisChannelLayer`` pushed a copy per
	member, and each connection popped its own). Pub/sub channels are server-wide, not per
	database, hence the database number in the prefix. Delivery is at most once: a message
	published while a process is reconnecting is lost, and the consumers fill such gaps from
	the database (docs/websocket.md).
	"""
	database = urlsplit(url).path.strip("/") or "0"
	return {
		"BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
		"CONFIG": {
			"hosts": [{"address": url, "socket_connect_timeout": 2, "health_check_interval": 30}],
			"prefix": f"apg:ws:{database}:",
		},
	}


REDIS_URL = ENV.REDIS_URL
if REDIS_URL:
	CACHES = {
		"default": {
			"BACKEND": "config.cache.RedisCache",
			"LOCATION": REDIS_URL,
			"KEY_PREFIX": "apg",
			"OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2},
		}
	}
	CHANNEL_LAYERS = {"default": redis_channel_layer(REDIS_URL)}
else:
	CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "apg"}}
	CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# --- Celery (see config/celery.py for queues and routing) ------------------------------

CELERY_BROKER_URL = REDIS_URL or "memory://localhost/"
CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, Any] = (
	# Ten priority lists per queue, served highest first (run priority 9 -> broker priority 0).
	{
		"visibility_timeout": 3600,
		"socket_connect_timeout": 2,
		"queue_order_strategy": "priority",
		"priority_steps": list(range(10)),
	}
	if REDIS_URL
	else {"polling_interval": 0.01}
)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_ALWAYS_EAGER = False
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_BACKEND = None
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 4
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = ENV.TIME_ZONE
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# Celery's Django fix-up closes the database (and the psycopg pool) around every task
# unless told to reuse connections: reopening them cost more than the step itself.
CELERY_DB_REUSE_MAX = 1000
# Periodic work (timer sweeps, cron triggers, the reaper) is driven by rows locked in the
# database, so beat keeps no state of its own: any number of beats may run.
CELERY_BEAT_SCHEDULER = "celery.beat:Scheduler"
CELERY_BEAT_SCHEDULE: dict[str, Any] = {
	"sweep-timers": {
		"task": "apg.sweep_timers",
		"schedule": 0.5,
		"options": {"queue": "engine", "expires": 5},
	},
	"reap-steps": {"task": "apg.reap_steps", "schedule": 15.0, "options": {"queue": "engine", "expires": 30}},
	"fire-cron-triggers": {
		"task": "apg.fire_cron_triggers",
		"schedule": 5.0,
		"options": {"queue": "engine", "expires": 10},
	},
	"sweep-events": {
		"task": "apg.sweep_events",
		"schedule": 3600.0,
		"options": {"queue": "engine", "expires": 600},
	},
	"sweep-webhook-deliveries": {
		"task": "apg.sweep_webhook_deliveries",
		"schedule": 10.0,
		"options": {"queue": "engine", "expires": 20},
	},
}
CELERY_TASK_ROUTES = {"apg.execute_step": {"queue": "steps"}}
CELERY_TASK_DEFAULT_QUEUE = "engine"

# --- Engine ----------------------------------------------------------------------------

ENGINE_EXPRESSION_TIMEOUT = 1.0
# A worker whose step leads to a next step on the same queue runs that one itself (no broker
# hop), for at most this many steps or seconds in a row; then the broker decides again.
STEP_CONTINUE_MAX_STEPS = 100
STEP_CONTINUE_MAX_SECONDS = 1.0
# A process publishes live events at once when it has sent none for this long; within it,
# what the next transitions publish is gathered and sent together (one message per group),
# so a burst of steps costs the WebSocket servers a few messages instead of one per step.
LIVE_EVENTS_LINGER_SECONDS = 0.01
STEP_LEASE_SECONDS = ENV.STEP_LEASE_SECONDS
# With a broker that keeps no epoch (the in-memory one), a step still "scheduled" this long
# after dispatch has lost its message and is sent again; with Redis, only steps dispatched
# before the broker lost its data are (workflows.tasks.broker_epoch). Claims make
# duplicates harmless.
STEP_REDISPATCH_SECONDS = ENV.STEP_REDISPATCH_SECONDS or max(120, STEP_LEASE_SECONDS * 2)
CELERY_BEAT_SCHEDULE["reap-steps"]["schedule"] = float(min(15, STEP_REDISPATCH_SECONDS, STEP_LEASE_SECONDS))
EVENT_RETENTION_SECONDS = ENV.EVENT_RETENTION_SECONDS
TENANT_CONCURRENCY_LIMIT = ENV.TENANT_CONCURRENCY_LIMIT
CONNECTOR_ALLOW_PRIVATE_NETWORKS = ENV.CONNECTOR_ALLOW_PRIVATE_NETWORKS
SECRETS_ENCRYPTION_KEY = ENV.SECRETS_ENCRYPTION_KEY

# --- Auth -------------------------------------------------------------------------------

AUTH_USER_MODEL = "workflows.User"
AUTHENTICATION_BACKENDS = [
	"django.contrib.auth.backends.ModelBackend",
	"guardian.backends.ObjectPermissionBackend",
]
AUTH_PASSWORD_VALIDATORS = [
	{"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
	{"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
	{"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
	{"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard"
LOGOUT_REDIRECT_URL = "login"
LOGIN_MAX_FAILURES = ENV.LOGIN_MAX_FAILURES
LOGIN_LOCKOUT_SECONDS = ENV.LOGIN_LOCKOUT_SECONDS
API_TOKEN_DEFAULT_TTL = timedelta(days=ENV.API_TOKEN_DEFAULT_TTL_DAYS)
ANONYMOUS_USER_NAME = None  # django-guardian: no anonymous user row

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_SECURE = ENV.HTTPS
CSRF_COOKIE_SECURE = ENV.HTTPS
SECURE_SSL_REDIRECT = ENV.HTTPS
SECURE_HSTS_SECONDS = 31536000 if ENV.HTTPS else 0
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
if ENV.TRUST_PROXY_HEADERS:
	SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# --- I18N, static -----------------------------------------------------------------------

LANGUAGE_CODE = "en-us"
TIME_ZONE = ENV.TIME_ZONE
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
# whitenoise warns about a missing root before the first collectstatic; a read-only
# install serves from the finders anyway.
with contextlib.suppress(OSError):
	STATIC_ROOT.mkdir(exist_ok=True)
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
	"default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
	"staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# Serving straight from the finders means a fresh clone needs no collectstatic step.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG

# --- APIs -------------------------------------------------------------------------------

REST_FRAMEWORK = {
	"DEFAULT_AUTHENTICATION_CLASSES": [
		"workflows.authentication.ApiTokenAuthentication",
		"rest_framework.authentication.SessionAuthentication",
	],
	"DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
	"DEFAULT_PARSER_CLASSES": [
		"workflows.api.parsers.StrictJSONParser",
		"rest_framework.parsers.FormParser",
		"rest_framework.parsers.MultiPartParser",
	],
	"DEFAULT_SCHEMA_CLASS": "workflows.api.schema.ProblemAutoSchema",
	# Every API view counts requests per API token (or signed-in user) and per tenant; see
	# workflows/api/throttles.py. "login" is the token endpoint's own lockout rate.
	"DEFAULT_THROTTLE_CLASSES": [
		"workflows.api.throttles.TokenRateThrottle",
		"workflows.api.throttles.TenantRateThrottle",
	],
	"DEFAULT_THROTTLE_RATES": {
		"login": "10/min",
		"token": ENV.API_RATE_PER_TOKEN,
		"tenant": ENV.API_RATE_PER_TENANT,
	},
	"EXCEPTION_HANDLER": "workflows.api.errors.problem_exception_handler",
	"UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
	"TITLE": "APG Workflow Orchestration API",
	"DESCRIPTION": "Workflows, runs, triggers and connectors of one tenant.",
	"VERSION": "1.0.0",
	"SERVE_INCLUDE_SCHEMA": False,
}
GRAPHENE = {"SCHEMA": "config.schema.schema"}

# --- Logging ----------------------------------------------------------------------------

LOGGING = build_logging(level=ENV.LOG_LEVEL, json_lines=ENV.json_logs)

# API limits ---------------------------------------------------------------------------------
# Request bodies on /api/, /graphql and /hooks/ over API_MAX_BODY_BYTES are refused with 413
# (workflows.middleware.RequestBodyLimitMiddleware, placed early so nothing reads the body
# first); Django's own form limit is the same number. Every /api/ response carries its API
# version and, for deprecated views, Deprecation/Sunset headers (workflows.api.versioning).
API_MAX_BODY_BYTES = ENV.API_MAX_BODY_BYTES
DATA_UPLOAD_MAX_MEMORY_SIZE = API_MAX_BODY_BYTES
API_BULK_MAX_ITEMS = ENV.API_BULK_MAX_ITEMS
_AFTER_REQUEST_CONTEXT = MIDDLEWARE.index("workflows.middleware.RequestContextMiddleware") + 1
MIDDLEWARE[_AFTER_REQUEST_CONTEXT:_AFTER_REQUEST_CONTEXT] = [
	"workflows.api.versioning.ApiVersionMiddleware",
	"workflows.middleware.RequestBodyLimitMiddleware",
]

# GraphQL
# Budgets checked on the parsed document before it executes (workflows/graphql/limits.py): how
# deeply fields may nest, the complexity (each field 1, paid per item of the page above it),
# aliases and top-level fields per operation, and the largest page a connection serves.
GRAPHQL_MAX_DEPTH = 10
GRAPHQL_MAX_COMPLEXITY = 50_000
GRAPHQL_MAX_ALIASES = 30
GRAPHQL_MAX_ROOT_FIELDS = 20
GRAPHQL_MAX_PAGE_SIZE = 100

# Outgoing webhooks -------------------------------------------------------------------------
# Deliveries are POSTed by the apg.deliver_webhook task (steps queue), retried with capped
# exponential backoff and jitter (base * 2^(n-1), at most the cap, then a random half to all
# of it), and marked dead after WEBHOOK_MAX_ATTEMPTS. A subscription whose attempts failed
# WEBHOOK_DISABLE_AFTER_FAILURES times in a row, over at least WEBHOOK_DISABLE_AFTER_SECONDS,
# is disabled with a notice. The engine reads each tenant's subscriptions at most every
# WEBHOOK_SUBSCRIPTION_CACHE_SECONDS per process. See docs/webhooks.md.
WEBHOOK_TIMEOUT_SECONDS = 10.0
WEBHOOK_MAX_ATTEMPTS = 10
WEBHOOK_RETRY_BASE_SECONDS = 15.0
WEBHOOK_RETRY_MAX_SECONDS = 3600.0
WEBHOOK_DISABLE_AFTER_FAILURES = 20
WEBHOOK_DISABLE_AFTER_SECONDS = 24 * 3600.0
WEBHOOK_SUBSCRIPTION_CACHE_SECONDS = 5.0
# A delivery due this long after it was last sent to a worker lost its message: sweep it.
WEBHOOK_REDISPATCH_SECONDS = 60.0
# The sweeper deletes succeeded and dead deliveries this old (the delivery log's retention).
WEBHOOK_DELIVERY_RETENTION_DAYS = 30
