"""``manage.py check``: configuration mistakes are system-check errors that name key and value."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.db import connection
from django.test import override_settings

from dbtasks import checks as dbtasks_checks
from dbtasks.compat import InvalidTaskBackend
from dbtasks.compat import task_backends
from tests import tasks
from tests.option_errors import KEY
from tests.option_errors import OPTION_ERRORS
from tests.option_errors import QUEUES

HINT = "Fix TASKS['default'] (QUEUES or OPTIONS); the README's 'Configure queues' lists every key."


def configure(settings, options, queues=QUEUES):
    settings.TASKS = {
        "default": {
            "BACKEND": "dbtasks.backend.DatabaseBackend",
            "QUEUES": list(queues),
            "OPTIONS": options,
        }
    }


def test_the_test_settings_pass_the_checks():
    call_command("check", "--fail-level", "WARNING")


@pytest.mark.parametrize(("options", "message"), OPTION_ERRORS)
def test_manage_py_check_reports_e002_with_key_and_value(settings, options, message):
    configure(settings, options)

    with pytest.raises(SystemCheckError) as excinfo:
        call_command("check")

    report = str(excinfo.value)
    assert f"?: (dbtasks.E002) {message}\n\tHINT: {HINT}" in report
    assert report.count("dbtasks.E002") == 1


def test_queues_given_as_a_string_is_reported_not_a_crash(settings):
    # Django would read QUEUES="default" as the queues "d", "e", "f"...: then
    # every @task module fails to import before any check can say why.
    settings.TASKS = {
        "default": {"BACKEND": "dbtasks.backend.DatabaseBackend", "QUEUES": "default"}
    }

    assert tasks.noop.using(backend="default").queue_name == "default"  # still importable
    with pytest.raises(SystemCheckError) as excinfo:
        call_command("check")

    assert (
        "?: (dbtasks.E002) TASKS['default']['QUEUES'] must be a list of queue names, "
        f"got 'default'.\n\tHINT: {HINT}"
    ) in str(excinfo.value)
    with pytest.raises(InvalidTaskBackend):
        tasks.noop.enqueue()


def test_the_backend_check_yields_exactly_one_error(settings):
    configure(settings, {"max_attempts": 0})

    errors = list(task_backends["default"].check())

    assert [(error.id, error.msg, error.hint) for error in errors] == [
        ("dbtasks.E002", f"{KEY}['max_attempts'] must be a positive integer, got 0.", HINT)
    ]


def test_a_misconfigured_backend_refuses_to_enqueue(settings):
    configure(settings, {"max_attempts": 0})

    with pytest.raises(InvalidTaskBackend) as excinfo:
        tasks.noop.enqueue()

    assert str(excinfo.value) == f"{KEY}['max_attempts'] must be a positive integer, got 0."


@pytest.mark.parametrize(
    ("task_path", "problem"),
    [("tests.tasks.not_a_task", "is not a task"), ("tests.gone.task", "cannot be imported")],
)
def test_a_schedule_must_point_at_a_task(settings, task_path, problem):
    configure(settings, {"schedules": {"nightly": {"task": task_path, "cron": "0 3 * * *"}}})

    errors = list(task_backends["default"].check())

    assert [(error.id, error.msg) for error in errors] == [
        ("dbtasks.E003", f"Schedule 'nightly' runs {task_path!r}, which {problem}.")
    ]


def test_dbtasks_must_be_installed(settings):
    configure(settings, {})
    installed = [app for app in settings.INSTALLED_APPS if app != "dbtasks"]

    with override_settings(INSTALLED_APPS=installed):
        errors = list(task_backends["default"].check())

    assert [(error.id, error.msg) for error in errors] == [
        (
            "dbtasks.E001",
            "dbtasks must be in INSTALLED_APPS to use dbtasks.backend.DatabaseBackend.",
        )
    ]


@pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite settings only")
def test_sqlite_without_immediate_transactions_or_wal_is_warned_about(monkeypatch):
    monkeypatch.setitem(connection.settings_dict, "OPTIONS", {})

    warnings = list(dbtasks_checks._check_sqlite("default"))

    assert [(warning.id, warning.msg, warning.hint) for warning in warnings] == [
        (
            "dbtasks.W001",
            (
                "Database 'default' is SQLite without 'transaction_mode': 'IMMEDIATE'; concurrent "
                "workers will fail with 'database is locked'."
            ),
            "Set DATABASES['default']['OPTIONS']['transaction_mode'] = 'IMMEDIATE'.",
        ),
        (
            "dbtasks.W002",
            (
                "Database 'default' is SQLite without WAL; workers and web requests will block "
                "each other."
            ),
            "Add 'PRAGMA journal_mode=WAL;' to DATABASES['default']['OPTIONS']['init_command'].",
        ),
    ]


LISTEN_HINT = (
    "Name a DATABASES alias that connects to the tasks' Postgres database directly, "
    "not through a pooler (the README's 'PgBouncer' section)."
)


def test_listen_database_must_name_a_databases_alias(settings):
    configure(settings, {"listen_database": "direct"})

    errors = list(task_backends["default"].check())

    assert [(error.id, error.msg, error.hint) for error in errors] == [
        (
            "dbtasks.E004",
            f"{KEY}['listen_database'] is 'direct': not in DATABASES (default).",
            LISTEN_HINT,
        )
    ]


@pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite settings only")
def test_listen_database_needs_postgres(settings):
    configure(settings, {"listen_database": "default"})

    errors = list(task_backends["default"].check())

    assert [(error.id, error.msg) for error in errors] == [
        (
            "dbtasks.E004",
            (
                f"{KEY}['listen_database'] is 'default': LISTEN/NOTIFY needs both it and the "
                "tasks' database on PostgreSQL."
            ),
        )
    ]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="Postgres settings only")
def test_a_pooled_database_with_server_side_cursors_or_prepared_statements_is_warned_about(
    settings, monkeypatch
):
    configure(settings, {"listen_database": "default"})
    monkeypatch.setitem(connection.settings_dict, "DISABLE_SERVER_SIDE_CURSORS", False)
    monkeypatch.setitem(connection.settings_dict, "OPTIONS", {"prepare_threshold": 5})

    warnings = list(task_backends["default"].check())

    assert [(warning.id, warning.msg) for warning in warnings] == [
        (
            "dbtasks.W003",
            (
                "Database 'default' is behind a pooler (TASKS['default']['OPTIONS']"
                "['listen_database'] is set) but has server-side cursors "
                "(DISABLE_SERVER_SIDE_CURSORS is off) and prepares statements (OPTIONS "
                "'prepare_threshold'/'server_side_binding'); in transaction mode the next "
                "transaction may run on another server connection."
            ),
        )
    ]
    monkeypatch.setitem(connection.settings_dict, "DISABLE_SERVER_SIDE_CURSORS", True)
    monkeypatch.setitem(connection.settings_dict, "OPTIONS", {})
    assert list(task_backends["default"].check()) == []
