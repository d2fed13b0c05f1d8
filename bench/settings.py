"""Django settings for the benchmark's worker arms.

``BENCH_SYSTEM`` picks the task backend: ``dbtasks`` (this project's) or
``tasksdb`` (django-tasks-db, installed only in ``bench/.venv-others``).
``BENCH_DATABASE_URL`` picks the database. Both arms get the project's own
``database_config()``: kept connections (``CONN_MAX_AGE=600``, health checks)
and, on SQLite, WAL, ``synchronous=NORMAL``, a busy timeout and IMMEDIATE
transactions. Logging is at WARNING for every arm, so no worker pays for a
log line per task.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from messagecenter.environment import database_config
from messagecenter.settings import TASKS as PROJECT_TASKS

BASE_DIR = Path(__file__).resolve().parent.parent
SYSTEM = os.environ.get("BENCH_SYSTEM", "dbtasks")
if SYSTEM not in {"dbtasks", "tasksdb"}:
    raise ValueError(f"BENCH_SYSTEM must be 'dbtasks' or 'tasksdb', got {SYSTEM!r}.")

DEBUG = False
SECRET_KEY = "bench-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz"
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
USE_TZ = True
TIME_ZONE = "UTC"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "dbtasks" if SYSTEM == "dbtasks" else "django_tasks_db",
]

DATABASES = {
    "default": database_config(
        os.environ.get(
            "BENCH_DATABASE_URL",
            f"sqlite:///{Path(tempfile.gettempdir()) / f'bench-{SYSTEM}.sqlite3'}",
        )
    )
}

TASKS: dict[str, Any]
if SYSTEM == "dbtasks":
    # The project's own backend options (retries, purge, schedules).
    # BENCH_QUEUES: more queues, for the figures with another queue's backlog.
    QUEUES = os.environ.get("BENCH_QUEUES", "default").split(",")
    # Not the per-task policies: they name Message Center's tasks and key
    # functions, whose app the bench does not install (the check imports them).
    OPTIONS = {k: v for k, v in PROJECT_TASKS["default"]["OPTIONS"].items() if k != "tasks"}
    TASKS = {"default": {**PROJECT_TASKS["default"], "QUEUES": QUEUES, "OPTIONS": OPTIONS}}
else:
    TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": ["default"]}}

LOG_LEVEL = os.environ.get("BENCH_LOG_LEVEL", "WARNING")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["stderr"], "level": LOG_LEVEL},
    # Django's default config puts "django" at INFO, which would let
    # django.tasks log two lines per task.
    "loggers": {"django": {"handlers": ["stderr"], "level": LOG_LEVEL, "propagate": False}},
}
