"""Settings for Message Center, read from the environment.

Every value has a safe default for local development; production values come
from environment variables (see the README's "Deploying" section). Missing
production values are reported by system checks (``messagecenter/checks.py``)
so ``manage.py check`` (and every command that runs the checks, the worker
included) names them. Only a value that cannot be read at all raises
(``messagecenter/environment.py``, naming the variable).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from django.utils.csp import CSP

# How each variable is read, and what is built from them (messagecenter/environment.py).
from messagecenter.environment import database_config
from messagecenter.environment import default_ntfy_server
from messagecenter.environment import email_backend
from messagecenter.environment import env_bool
from messagecenter.environment import env_int
from messagecenter.environment import env_list
from messagecenter.environment import env_seconds
from messagecenter.environment import log_level
from messagecenter.environment import logging_config

BASE_DIR = Path(__file__).resolve().parent.parent


# --- Core -------------------------------------------------------------------

# Off unless asked for: a forgotten variable must never expose debug pages.
DEBUG = env_bool("DEBUG", default=False)

# In DEBUG a fixed development key is fine; in production an empty key makes
# Django refuse to start with "The SECRET_KEY setting must not be empty."
SECRET_KEY = os.environ.get("SECRET_KEY", "django-insecure-dev-only-key" if DEBUG else "")
# Rotating it: the new key in SECRET_KEY, the old ones here, and sessions,
# password-reset links and open pages' live tokens signed with them still hold.
SECRET_KEY_FALLBACKS = env_list("SECRET_KEY_FALLBACKS")

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]" if DEBUG else "")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_htmx",
    "dbtasks",
    "messagecenter",
]

MIDDLEWARE = [
    # A body over MAX_REQUEST_BODY_BYTES is refused before anything reads it.
    "messagecenter.middleware.RequestBodyCapMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # WhiteNoise serves the hashed, compressed files collectstatic wrote.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # Cache-Control: no-store on every page (after WhiteNoise: not on static files).
    "messagecenter.middleware.NoStoreMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Every view requires a signed-in user unless it opts out with
    # @login_not_required (Django 5.1+): secure by default.
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Django 6's built-in Content Security Policy.
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "messagecenter.urls"
WSGI_APPLICATION = "messagecenter.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.csp",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]


# --- Database ---------------------------------------------------------------

# SQLite gets WAL, a busy timeout and IMMEDIATE transactions; DATABASE_POOLED
# says Postgres is behind a transaction pooler (messagecenter/environment.py).
DATABASES = {
    "default": database_config(
        os.environ.get("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
        pooled=env_bool("DATABASE_POOLED", default=False),
    )
}
# On Postgres (not pooled), each web process LISTENs for changes and answers
# a poll that finds nothing changed from memory (messagecenter/live_memo.py).
LIVE_MEMO = env_bool("LIVE_MEMO", default=True)

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"


# --- Tasks ------------------------------------------------------------------

# Each user's send quota (messagecenter/quotas.py): notifications per rolling
# hour and per rolling 24 hours; a SendQuota row in the admin overrides them.
SENDS_PER_HOUR = env_int("SENDS_PER_HOUR", 100)
SENDS_PER_DAY = env_int("SENDS_PER_DAY", 1000)
# Fair sharing: at most this many of a user's deliveries READY or RUNNING at
# once, the rest BLOCKED in their own order; "fair": across users the claim
# ignores priority (README, "Many users").
SENDS_AT_ONCE_PER_USER = env_int("SENDS_AT_ONCE_PER_USER", 2)
# The database backend from dbtasks/. OPTIONS are documented in the README
# ("Configure queues") and validated by `manage.py check`.
TASKS: dict[str, dict[str, Any]] = {
    "default": {
        "BACKEND": "dbtasks.backend.DatabaseBackend",
        "QUEUES": ["default"],
        "OPTIONS": {
            "max_attempts": 5,
            "backoff_factor": 3,
            # The retention purge runs as a recurring task (at 17 past every
            # hour) rather than inside every worker.
            "purge": {"finished": "10 days", "unfinished": "20 days", "interval": None},
            "schedules": {
                "purge-results": {
                    "task": "dbtasks.tasks.purge_expired_results",
                    "cron": "17 * * * *",
                },
            },
            "tasks": {
                "messagecenter.tasks.send_notification": {
                    "concurrency": {
                        "limit": SENDS_AT_ONCE_PER_USER,
                        "key": "messagecenter.tasks.sender_key",
                        "fair": True,
                    }
                },
            },
        },
    }
}


# Prometheus scrapes /ops/metrics/ with "Authorization: Bearer <token>";
# without a token only signed-in staff can read it.
DBTASKS_METRICS_TOKEN = os.environ.get("DBTASKS_METRICS_TOKEN", "")


# --- Notifications ----------------------------------------------------------

# Where send_notification posts: an ntfy topic URL such as
# https://ntfy.sh/<topic>. Required in production (messagecenter.E001).
NTFY_URL = os.environ.get("NTFY_URL", "")
# Optional access token for protected topics, sent as a Bearer token.
NTFY_TOKEN = os.environ.get("NTFY_TOKEN", "")
# Seconds to wait for ntfy before the attempt fails (and is retried).
NTFY_TIMEOUT = env_seconds("NTFY_TIMEOUT", 10.0)
# Users choose their channels' servers, so the worker connects only where
# these allow (messagecenter/outbound.py): plain http to these hosts only
# (everything else https), and private, loopback or link-local addresses
# only inside these networks. Both are open to loopback in development.
NTFY_ALLOWED_HTTP_HOSTS = env_list(
    "NTFY_ALLOWED_HTTP_HOSTS", "localhost,127.0.0.1,::1" if DEBUG else ""
)
NTFY_ALLOWED_NETWORKS = env_list("NTFY_ALLOWED_NETWORKS", "127.0.0.0/8,::1/128" if DEBUG else "")
# The server of every user's own channels unless they choose another: each
# new user gets a private random topic there. Without the setting, NTFY_URL's
# server (a deployment that had one global topic), else ntfy.sh.
NTFY_DEFAULT_SERVER = os.environ.get("NTFY_DEFAULT_SERVER", "") or default_ntfy_server(NTFY_URL)
# Channels' access tokens are stored encrypted (messagecenter/tokens.py) with
# these comma-separated Fernet keys: the first encrypts, all decrypt (put a new
# key first, then run rotate_channel_tokens). Empty: a key derived from
# SECRET_KEY, which production should not rely on (messagecenter.W001).
CHANNEL_TOKEN_KEYS = env_list("CHANNEL_TOKEN_KEY")


# --- Request size -----------------------------------------------------------

# The largest body accepted (messagecenter.middleware): the forms here post
# a few KiB; the admin's are larger but still small.
MAX_REQUEST_BODY_BYTES = env_int("MAX_REQUEST_BODY_BYTES", 1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = MAX_REQUEST_BODY_BYTES
FILE_UPLOAD_MAX_MEMORY_SIZE = MAX_REQUEST_BODY_BYTES


# --- Email ------------------------------------------------------------------

# Every email (sign-up verification, password reset) is sent by a worker:
# dbtasks' backend enqueues a task per message, which hands it to the backend
# that really sends, so a request never waits for a mail server and a failed
# send is retried. That backend: SMTP (EMAIL_HOST, EMAIL_PORT, ...) unless
# EMAIL_FILE_PATH is set (one file per message, for development and the
# browser tests) or DEBUG is on (the worker's console).
EMAIL_BACKEND = "dbtasks.mail.TaskEmailBackend"
EMAIL_FILE_PATH = os.environ.get("EMAIL_FILE_PATH", "")
DBTASKS_EMAIL_BACKEND = email_backend(file_path=EMAIL_FILE_PATH, debug=DEBUG)
EMAIL_HOST = os.environ.get("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", default=False)
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 10)
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "Message Center <noreply@localhost>")


# --- Authentication ---------------------------------------------------------

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "index"
LOGOUT_REDIRECT_URL = "login"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]


# --- Internationalisation ---------------------------------------------------

LANGUAGE_CODE = "en-us"
TIME_ZONE = os.environ.get("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True


# --- Static files -----------------------------------------------------------

STATIC_URL = "static/"
# Where collectstatic writes (the Dockerfile runs it at build time).
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT") or BASE_DIR / "staticfiles")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        # Hashed names (cache forever) and pre-compressed copies in
        # production; plain files in development, no collectstatic needed.
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        ),
    },
}


# --- Security ---------------------------------------------------------------

# Behind a TLS-terminating proxy (Heroku, a load balancer): trust its header.
# X-Forwarded-Proto is believed only when a proxy in front sets it (and
# drops the client's own): otherwise any client could claim https. Set
# TRUST_X_FORWARDED_PROTO=1 behind a TLS-terminating proxy (with
# SECURE_SSL_REDIRECT on and no such proxy, every request would redirect).
if env_bool("TRUST_X_FORWARDED_PROTO", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# The same for X-Forwarded-For: the sign-in throttle (messagecenter/throttle.py)
# counts per client address, which is REMOTE_ADDR unless a proxy is declared.
TRUST_X_FORWARDED_FOR = env_bool("TRUST_X_FORWARDED_FOR", default=False)
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", default=not DEBUG)
# Cookies only travel over HTTPS in production. SECURE_COOKIES=0 is for a
# production-like stack served over plain http on localhost (docker compose).
SESSION_COOKIE_SECURE = env_bool("SECURE_COOKIES", default=not DEBUG)
CSRF_COOKIE_SECURE = env_bool("SECURE_COOKIES", default=not DEBUG)
SECURE_HSTS_SECONDS = 0 if DEBUG else env_int("SECURE_HSTS_SECONDS", 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = not DEBUG
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

# No inline script or style anywhere: htmx's own indicator <style> is turned
# off in templates/base.html (htmx-config meta tag), so 'self' is enough.
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF],
    "style-src": [CSP.SELF],
    "img-src": [CSP.SELF, "data:"],
    "connect-src": [CSP.SELF],
    "form-action": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
    "base-uri": [CSP.NONE],
    "object-src": [CSP.NONE],
}


# --- Logging ----------------------------------------------------------------

# Everything to stdout, one line per event: what process managers collect.
LOG_LEVEL = log_level(os.environ.get("LOG_LEVEL", ""))
LOGGING = logging_config(LOG_LEVEL)
