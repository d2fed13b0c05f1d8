"""Settings for the test suite: the project's settings with test-sized knobs.

The database is SQLite unless DATABASE_URL says otherwise (`make test` runs the
database tests a second time with DATABASE_URL=$TEST_POSTGRES_URL). Worker
subprocesses started by the tests use these settings too, pointed at the test
database through DATABASE_URL.
"""

from __future__ import annotations

import json
import os
import tempfile

from messagecenter.environment import database_config
from messagecenter.settings import *  # noqa: F403
from messagecenter.settings import BASE_DIR
from messagecenter.settings import TASKS as PROJECT_TASKS
from tests.task_settings import tasks

DEBUG = False
SECRET_KEY = "tests-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz"
ALLOWED_HOSTS = ["testserver", "localhost", "127.0.0.1"]
SECURE_SSL_REDIRECT = False
SESSION_COOKIE_SECURE = False
CSRF_COOKIE_SECURE = False
SECURE_HSTS_SECONDS = 0
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast, tests only
# Channel tokens' own key, as production sets one (messagecenter.W001 otherwise);
# tests of the key's handling override it.
CHANNEL_TOKEN_KEYS = CHANNEL_TOKEN_KEYS or ["dGVzdHMtb25seS1jaGFubmVsLXRva2VuLWtleS0wMTI="]  # noqa: F405

# Workers behind PgBouncer (tests/dbtasks/postgres/test_pgbouncer.py): DATABASE_URL
# is the pooler, TEST_LISTEN_DATABASE_URL the server itself, for LISTEN (the
# worker is told with TEST_TASK_OPTIONS='{"listen_database": "listen"}').
DATABASES = {
    "default": database_config(
        os.environ.get("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
        pooled=bool(os.environ.get("TEST_LISTEN_DATABASE_URL")),
    )
}
if DATABASES["default"]["ENGINE"] != "django.db.backends.sqlite3":
    # One test database per test run, so concurrent runs never collide.
    DATABASES["default"]["TEST"] = {"NAME": f"test_messagecenter_{os.getpid()}"}
    # A test database needs no durability: a commit that waits for the disk
    # (1.5 ms each on the CI machine, thousands of them a pass) only slows
    # the suite. A setting of each session, so that a shared server's own
    # configuration stays as it is.
    DATABASES["default"].setdefault("OPTIONS", {})["options"] = "-c synchronous_commit=off"
    # Django's, with a cheaper flush after each transactional test (DELETE, not TRUNCATE).
    DATABASES["default"]["ENGINE"] = "tests.postgres_backend"
else:
    # A file, not :memory:, so worker subprocesses can open the test database.
    DATABASES["default"]["TEST"] = {
        "NAME": os.environ.get(
            "TEST_SQLITE_NAME",
            os.path.join(tempfile.gettempdir(), f"messagecenter-test-{os.getpid()}.sqlite3"),
        )
    }

if os.environ.get("TEST_LISTEN_DATABASE_URL"):
    DATABASES["listen"] = database_config(os.environ["TEST_LISTEN_DATABASE_URL"])

# A stand-in ntfy server is started by the tests that deliver; nothing here
# ever reaches the internet.
NTFY_URL = os.environ.get("NTFY_URL", "http://127.0.0.1:9/test-topic")
# The stand-in ntfy listens on loopback: allowed here, as in development.
NTFY_ALLOWED_HTTP_HOSTS = ["127.0.0.1", "localhost"]
NTFY_ALLOWED_NETWORKS = ["127.0.0.0/8", "::1/128"]
# New users' channels: on NTFY_URL's server (the browser tests' stand-in).
NTFY_DEFAULT_SERVER = os.environ.get("NTFY_DEFAULT_SERVER") or NTFY_URL.rpartition("/")[0] + "/"
NTFY_TIMEOUT = float(os.environ.get("NTFY_TIMEOUT", "2"))

# dbtasks with test-sized OPTIONS (immediate retries, short heartbeats, no
# automatic purge), shared with settings_django52: see tests/task_settings.py.
# A test (or a worker subprocess) may override OPTIONS keys with
# TEST_TASK_OPTIONS='{"max_attempts": 1}'.
# The pytest process answers every poll from the database: a listener's
# connection (messagecenter/live_listener.py) would keep its test database from
# being dropped. The app processes tests start run it, as production does
# (tests/live.py's child_env), and the memo's own tests start one and stop it.
LIVE_MEMO = os.environ.get("LIVE_MEMO") == "1"

TASKS = tasks("django.tasks.backends.immediate.ImmediateBackend")
# Other keys of the default backend (BACKEND, QUEUES) can be replaced too, with
# TEST_TASK_BACKEND='{"QUEUES": ["default"]}': the bad-configuration tests
# start subprocesses with mistakes there.
TASKS["default"] |= json.loads(os.environ.get("TEST_TASK_BACKEND", "{}"))
# The project's per-task OPTIONS (each user's sends limited and shared
# fairly), so the tests send through the same limits as production.
TASKS["default"]["OPTIONS"].setdefault("tasks", PROJECT_TASKS["default"]["OPTIONS"]["tasks"])

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["stderr"], "level": os.environ.get("LOG_LEVEL", "WARNING")},
}

INSTALLED_APPS = [*INSTALLED_APPS, "tests.testapp"]  # noqa: F405
