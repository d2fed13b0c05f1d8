"""How the settings read the environment, and what they build from it.

``messagecenter.settings`` stays the settings module (``DJANGO_SETTINGS_MODULE``);
the readers and builders it calls live here, so it stays a list of values.
Every reader raises ``ImproperlyConfigured`` naming the variable when a
value cannot be read at all; missing production values are left to the
system checks (``messagecenter/checks.py``).
"""

from __future__ import annotations

import math
import os
import re
from typing import Any

import dj_database_url
from django.core.exceptions import ImproperlyConfigured


def env_bool(name: str, *, default: bool) -> bool:
    """Read a yes/no environment variable ("1", "true", "yes", "on" are true)."""
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str = "") -> list[str]:
    """Read a comma-separated environment variable into a list."""
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def env_seconds(name: str, default: float) -> float:
    """Read a positive number of seconds; an unreadable value names the variable."""
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds > 0):
        raise ImproperlyConfigured(f"{name} must be a positive number of seconds, got {value!r}.")
    return seconds


def env_int(name: str, default: int) -> int:
    """Read a whole number of at least 0; an unreadable value names the variable."""
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    if not value.isdigit():
        raise ImproperlyConfigured(f"{name} must be a whole number of at least 0, got {value!r}.")
    return int(value)


# SQLite needs three things to serve a web process and workers at once:
# WAL (readers never block the writer), a busy timeout (wait for the write
# lock instead of failing with "database is locked"), and IMMEDIATE
# transactions (take the write lock at BEGIN, so two transactions never both
# read and then deadlock upgrading to write). dbtasks.W001 checks the last.
SQLITE_OPTIONS: dict[str, Any] = {
    "init_command": (
        "PRAGMA journal_mode=WAL;"
        "PRAGMA synchronous=NORMAL;"
        "PRAGMA busy_timeout=20000;"
        "PRAGMA foreign_keys=ON;"
    ),
    "transaction_mode": "IMMEDIATE",
    "timeout": 20,
}


def redact_password(url: str) -> str:
    """The URL with its password replaced by ``***``, fit for an error message."""
    return re.sub(r"(://[^:/@]*:)[^@/]*@", r"\1***@", url)


def database_config(
    url: str, *, name: str = "DATABASE_URL", pooled: bool = False
) -> dict[str, Any]:
    """Build a DATABASES entry from a URL, with our SQLite or Postgres options.

    ``name`` is the variable the URL came from: a URL that cannot be parsed
    raises ImproperlyConfigured naming it (dj-database-url's own errors do
    not say which setting was wrong), with any password masked. ``pooled``:
    the URL is a transaction pooler's (PgBouncer), so no prepared statements
    and no server-side cursors.
    """
    if not url.strip():
        raise ImproperlyConfigured(
            f"{name} is set but empty. Set it to a database URL such as "
            "postgres://user:password@host:5432/name, or unset it for the local SQLite file."
        )
    try:
        config: dict[str, Any] = dict(
            dj_database_url.parse(url, conn_max_age=600, conn_health_checks=True)
        )
    except ValueError as error:  # dj_database_url.ParseError, UnknownSchemeError
        raise ImproperlyConfigured(
            f"{name} {redact_password(url)!r} is not a database URL: {error}"
        ) from None
    if config["ENGINE"] == "django.db.backends.sqlite3":
        config["OPTIONS"] = {**SQLITE_OPTIONS, **config.get("OPTIONS", {})}
    elif config["ENGINE"] == "django.db.backends.postgresql" and pooled:
        # A transaction pooler hands each transaction any server connection: a
        # session's cursors and prepared statements (the live poll's,
        # messagecenter/compiled.py) would be lost. Django's documented switch.
        config["DISABLE_SERVER_SIDE_CURSORS"] = True
    return config


def default_ntfy_server(ntfy_url: str) -> str:
    """NTFY_URL's server (a deployment that had one global topic), else ntfy.sh."""
    if ntfy_url.count("/") >= 3:
        return ntfy_url.rstrip("/").rpartition("/")[0] + "/"
    return "https://ntfy.sh/"


def email_backend(*, file_path: str, debug: bool) -> str:
    """The backend that really sends (dbtasks' task hands each message to it).

    One file per message in ``file_path`` when set (development, the browser
    tests), the worker's console with DEBUG, else SMTP.
    """
    if file_path:
        return "django.core.mail.backends.filebased.EmailBackend"
    if debug:
        return "django.core.mail.backends.console.EmailBackend"
    return "django.core.mail.backends.smtp.EmailBackend"


LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def log_level(value: str) -> str:
    """LOG_LEVEL, upper-cased; INFO when empty."""
    level = value.strip().upper() or "INFO"
    if level not in LEVELS:
        # logging.config would fail with "Unknown level", without naming the variable.
        raise ImproperlyConfigured(
            f"LOG_LEVEL must be DEBUG, INFO, WARNING, ERROR or CRITICAL, got {level!r}."
        )
    return level


def logging_config(level: str) -> dict[str, Any]:
    """Everything to stdout, one line per event, at ``level``."""
    stdout = {"handlers": ["stdout"], "level": level, "propagate": False}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        },
        "handlers": {
            "stdout": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stdout",
                "formatter": "plain",
            },
        },
        "root": {"handlers": ["stdout"], "level": level},
        # django.tasks logs every task start and finish (with tracebacks).
        "loggers": {"django": stdout, "django.tasks": dict(stdout)},
    }
