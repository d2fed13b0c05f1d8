"""System checks for the database backend, run by ``manage.py check``.

Django's ``check_tasks`` calls ``DatabaseBackend.check()`` for every
configured backend, which yields from ``check_backend()`` here.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from django.apps import apps
from django.core import checks
from django.db import connections
from django.utils.module_loading import import_string

from dbtasks.compat import Task
from dbtasks.concurrency import check_key_function

if TYPE_CHECKING:
    from dbtasks.backend import DatabaseBackend

E001_MSG = "dbtasks must be in INSTALLED_APPS to use {backend}."
E001_HINT = "Add 'dbtasks' to INSTALLED_APPS."
E002_HINT = (
    "Fix TASKS[{alias!r}] (QUEUES or OPTIONS); the README's 'Configure queues' lists every key."
)
E003_MSG = "Schedule {name!r} runs {path!r}, which {problem}."
E003_HINT = "Point the schedule's 'task' at a function decorated with @task."
W001_MSG = (
    "Database {db!r} is SQLite without 'transaction_mode': 'IMMEDIATE'; concurrent "
    "workers will fail with 'database is locked'."
)
W001_HINT = "Set DATABASES[{db!r}]['OPTIONS']['transaction_mode'] = 'IMMEDIATE'."
W002_MSG = "Database {db!r} is SQLite without WAL; workers and web requests will block each other."
W002_HINT = "Add 'PRAGMA journal_mode=WAL;' to DATABASES[{db!r}]['OPTIONS']['init_command']."
E004_MSG = "TASKS[{alias!r}]['OPTIONS']['listen_database'] is {listen!r}: {problem}."
E004_HINT = (
    "Name a DATABASES alias that connects to the tasks' Postgres database directly, "
    "not through a pooler (the README's 'PgBouncer' section)."
)
W003_MSG = (
    "Database {db!r} is behind a pooler (TASKS[{alias!r}]['OPTIONS']['listen_database'] "
    "is set) but {problem}; in transaction mode the next transaction may run on another "
    "server connection."
)
W003_HINT = (
    "Set DATABASES[{db!r}]['DISABLE_SERVER_SIDE_CURSORS'] = True and leave "
    "'prepare_threshold' and 'server_side_binding' out of its OPTIONS."
)


def check_backend(backend: DatabaseBackend) -> Iterator[checks.CheckMessage]:
    """Yield the problems of one DatabaseBackend's configuration."""
    path = f"{type(backend).__module__}.{type(backend).__qualname__}"
    if not apps.is_installed("dbtasks"):
        yield checks.Error(E001_MSG.format(backend=path), hint=E001_HINT, id="dbtasks.E001")
        return
    if backend.options_error is not None:
        yield checks.Error(
            str(backend.options_error),
            hint=E002_HINT.format(alias=backend.alias),
            id="dbtasks.E002",
        )
    yield from _check_schedules(backend)
    yield from _check_concurrency_keys(backend)
    yield from _check_sqlite(backend.db_alias)
    yield from _check_listen_database(backend)


def _check_schedules(backend: DatabaseBackend) -> Iterator[checks.CheckMessage]:
    for schedule in backend.config.schedules:
        try:
            task = import_string(schedule.task_path)
        except ImportError:
            problem = "cannot be imported"
        else:
            if isinstance(task, Task):
                continue
            problem = "is not a task"
        yield checks.Error(
            E003_MSG.format(name=schedule.name, path=schedule.task_path, problem=problem),
            hint=E003_HINT,
            id="dbtasks.E003",
        )


def _check_concurrency_keys(backend: DatabaseBackend) -> Iterator[checks.CheckMessage]:
    config = backend.config
    policies = [config.default_policy, *config.policies.values(), *config.task_policies.values()]
    problems = {check_key_function(p.concurrency.key) for p in policies if p.concurrency}
    problems |= {
        check_key_function(p.rate_limit.key, what="rate limit") for p in policies if p.rate_limit
    }
    for problem in sorted(problem for problem in problems if problem is not None):
        yield checks.Error(problem, hint=E002_HINT.format(alias=backend.alias), id="dbtasks.E002")


def _check_sqlite(db: str) -> Iterator[checks.CheckMessage]:
    settings_dict = connections[db].settings_dict
    if connections[db].vendor != "sqlite" or settings_dict["NAME"] in ("", ":memory:"):
        return
    options = settings_dict.get("OPTIONS", {})
    if str(options.get("transaction_mode", "")).upper() != "IMMEDIATE":
        yield checks.Warning(
            W001_MSG.format(db=db), hint=W001_HINT.format(db=db), id="dbtasks.W001"
        )
    init_command = str(options.get("init_command", "")).lower().replace(" ", "")
    if "journal_mode=wal" not in init_command:
        yield checks.Warning(
            W002_MSG.format(db=db), hint=W002_HINT.format(db=db), id="dbtasks.W002"
        )


def _check_listen_database(backend: DatabaseBackend) -> Iterator[checks.CheckMessage]:
    """A LISTEN connection apart from the pooled one: a Postgres alias (same database:
    NOTIFY is per database, and through a pooler the names may differ, so not checked)."""
    listen, db = backend.config.listen_database, backend.db_alias
    if listen is None:
        return
    if listen not in connections:
        problem = f"not in DATABASES ({', '.join(sorted(connections))})"
    elif connections[listen].vendor != "postgresql" or connections[db].vendor != "postgresql":
        problem = "LISTEN/NOTIFY needs both it and the tasks' database on PostgreSQL"
    else:
        yield from _check_pooled(backend.alias, db)
        return
    yield checks.Error(
        E004_MSG.format(alias=backend.alias, listen=listen, problem=problem),
        hint=E004_HINT,
        id="dbtasks.E004",
    )


def _check_pooled(alias: str, db: str) -> Iterator[checks.CheckMessage]:
    settings_dict = connections[db].settings_dict
    options = settings_dict.get("OPTIONS", {})
    problems = []
    if not settings_dict.get("DISABLE_SERVER_SIDE_CURSORS"):
        problems.append("has server-side cursors (DISABLE_SERVER_SIDE_CURSORS is off)")
    if options.get("prepare_threshold") is not None or options.get("server_side_binding"):
        problems.append("prepares statements (OPTIONS 'prepare_threshold'/'server_side_binding')")
    if problems:
        yield checks.Warning(
            W003_MSG.format(db=db, alias=alias, problem=" and ".join(problems)),
            hint=W003_HINT.format(db=db),
            id="dbtasks.W003",
        )
