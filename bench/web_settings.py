"""Settings for the poll-endpoint figure: the project's own, on a bench database.

Everything the web app runs with in production (middleware, sessions, CSP,
templates, the dbtasks backend) stays; only what a loopback benchmark cannot
have changes: no HTTPS redirect or secure cookies, plain static storage (no
collectstatic manifest), a bench database, quiet logs, and ``bench.urls``,
which adds a hello view next to the app's URLs.
"""

from __future__ import annotations

import os

from messagecenter.environment import database_config
from messagecenter.settings import *  # noqa: F403

DEBUG = False
SECRET_KEY = "bench-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz"
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
SECURE_SSL_REDIRECT = False
SESSION_COOKIE_SECURE = False
CSRF_COOKIE_SECURE = False
SECURE_HSTS_SECONDS = 0
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
ROOT_URLCONF = "bench.urls"
DATABASES = {"default": database_config(os.environ["BENCH_DATABASE_URL"])}
NTFY_URL = "http://127.0.0.1:9/bench"  # never called: no worker runs in this figure
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # setup speed only
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["stderr"], "level": "WARNING"},
    "loggers": {"django": {"handlers": ["stderr"], "level": "WARNING", "propagate": False}},
}
