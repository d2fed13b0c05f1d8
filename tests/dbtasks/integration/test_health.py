"""``manage.py dbtasks_health``: one line, and an exit code a container health check can use."""

from __future__ import annotations

import json
import os
import subprocess
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from io import StringIO
from unittest import mock

import django
import pytest
import time_machine
from django.core.management import CommandError
from django.core.management import call_command
from django.utils import timezone

from dbtasks.models import DBTaskResult
from tests import tasks
from tests.live import manage
from tests.ops_data import PATIENT_TIMEOUT
from tests.ops_data import add_worker
from tests.ops_data import patient_heartbeats
from tests.workers import database_url
from tests.workers import settings_module

T0 = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)

# Health works on Django 5.2 too (make test-django52).


def health(*args: str) -> tuple[int | str | None, str, str]:
    """Run the command in this process; return (exit code, stdout, stderr)."""
    out, err = StringIO(), StringIO()
    try:
        call_command("dbtasks_health", *args, stdout=out, stderr=err)
    except SystemExit as exit_:
        code = exit_.code
    else:
        code = 0
    return code, out.getvalue(), err.getvalue()


def run_subprocess(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        # Keeps the settings this run uses (tests.settings, tests.settings_django52).
        "DJANGO_SETTINGS_MODULE": settings_module(),
        "DATABASE_URL": url,
        "TEST_TASK_OPTIONS": json.dumps({"heartbeat_timeout": PATIENT_TIMEOUT}),
    }
    return manage("dbtasks_health", *args, env=env, timeout=60)


@pytest.fixture(autouse=True)
def _patient_heartbeats(settings):
    patient_heartbeats(settings)


# --- Verdicts ---------------------------------------------------------------


def test_no_worker_is_unhealthy(db):
    code, out, err = health()

    assert code == 1
    assert out == ""
    # The backend's heartbeat_timeout (see patient_heartbeats).
    assert err == "UNHEALTHY: no worker heartbeated in the last 1m\n"


def test_a_live_worker_and_nothing_to_do_is_healthy(db):
    add_worker("w1")

    assert health() == (0, "OK: 0 ready, 1 worker alive\n", "")


def test_the_line_reports_backlog_age_and_workers(db):
    tasks.noop.enqueue()
    tasks.noop.enqueue()
    tasks.noop.using(queue_name="low_priority").enqueue()
    # enqueue() takes the database server's time, which no time machine moves.
    DBTaskResult.objects.update(enqueued_at=T0, available_after=T0)
    # Scheduled for later: neither ready nor old.
    tasks.noop.using(run_after=T0 + timedelta(hours=1)).enqueue()
    # The workers heartbeat at T0 + 2 s, and the check reads the database's clock then.
    database_clock = mock.patch(
        "dbtasks.ops.health.database_time", return_value=T0 + timedelta(seconds=2)
    )
    with time_machine.travel(T0 + timedelta(seconds=2), tick=False), database_clock:
        add_worker("w1")
        add_worker("w2")

        assert health() == (0, "OK: 3 ready, oldest 2s, 2 workers alive\n", "")


def test_more_ready_tasks_than_max_ready_is_unhealthy(db):
    add_worker("w1")
    for _ in range(3):
        tasks.noop.enqueue()

    assert health("--max-ready", "3")[0] == 0
    code, _, err = health("--max-ready", "2")
    assert code == 1
    assert err == "UNHEALTHY: 3 ready tasks, more than --max-ready 2\n"


def test_an_old_ready_task_is_unhealthy(db):
    add_worker("w1")
    result = tasks.noop.enqueue()
    DBTaskResult.objects.filter(pk=result.id).update(
        available_after=timezone.now() - timedelta(minutes=10, seconds=30)
    )

    assert health("--max-age", "11 minutes")[0] == 0
    code, _, err = health("--max-age", "5 minutes")
    assert code == 1
    assert err == "UNHEALTHY: oldest ready task waited 10m 30s, more than --max-age 5m\n"


def test_every_problem_is_named_in_the_one_line(db):
    result = tasks.noop.enqueue()
    DBTaskResult.objects.filter(pk=result.id).update(
        available_after=timezone.now() - timedelta(hours=2)
    )

    code, _, err = health("--max-ready", "0", "--max-age", "1 hour")

    assert code == 1
    assert err.count("\n") == 1
    assert err == (
        "UNHEALTHY: 1 ready task, more than --max-ready 0; "
        "oldest ready task waited 2h, more than --max-age 1h; "
        "no worker heartbeated in the last 1m\n"
    )


def test_a_stale_heartbeat_does_not_count(db):
    add_worker("w1", heartbeat_ago=timedelta(minutes=5))

    assert health()[0] == 1
    assert health("--heartbeat-within", "10 minutes") == (0, "OK: 0 ready, 1 worker alive\n", "")
    code, _, err = health("--heartbeat-within", "4 minutes")
    assert (code, err) == (1, "UNHEALTHY: no worker heartbeated in the last 4m\n")


def test_each_checked_queue_needs_a_live_worker(db):
    add_worker("default-only", queues=["default"])
    tasks.noop.enqueue()
    tasks.noop.using(queue_name="low_priority").enqueue()
    tasks.noop.using(queue_name="low_priority").enqueue()

    assert health("--queue", "default") == (0, "OK: 1 ready, oldest <1s, 1 worker alive\n", "")
    code, _, err = health("--queue", "low_priority", "-q", "other", "--max-ready", "5")
    assert code == 1
    assert err == "UNHEALTHY: no live worker serves queue(s) low_priority, other\n"
    assert health("--queue", "low_priority,other")[2] == err
    # All queues (the default) includes the unserved ones.
    assert health()[0] == 1


def test_verbosity_zero_says_nothing(db):
    assert health("-v", "0") == (1, "", "")
    add_worker("w1")
    assert health("-v", "0") == (0, "", "")


# --- Mistakes in the check itself -------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--queue", "nope"], "Unknown queue(s) nope"),
        (["--backend", "missing"], "missing"),
        (["--backend", "immediate"], "is not a dbtasks DatabaseBackend"),
        (["--max-age", "30"], "needs a unit"),
        (["--max-age", "0 seconds"], "must be more than 0"),
        (["--heartbeat-within", "soon"], "must be a duration"),
        (["--max-ready", "-1"], "must be at least 0"),
    ],
)
def test_usage_errors_are_command_errors(db, args, message, settings):
    # Any backend that is not dbtasks' will do; Django 5.2 has no django.tasks.
    dummy = "django.tasks.backends.dummy.DummyBackend"
    if django.VERSION < (6,):
        dummy = "django_tasks.backends.dummy.DummyBackend"
    settings.TASKS = {**settings.TASKS, "immediate": {"BACKEND": dummy}}
    with pytest.raises(CommandError, match=message.replace("(", r"\(").replace(")", r"\)")):
        call_command("dbtasks_health", *args, stdout=StringIO(), stderr=StringIO())


def test_broken_backend_options_are_unhealthy(db, settings):
    settings.TASKS = {
        "default": {
            "BACKEND": "dbtasks.backend.DatabaseBackend",
            "OPTIONS": {"max_attempts": 0},
        }
    }

    code, _, err = health()

    assert code == 1
    assert err.startswith("UNHEALTHY: TASKS['default']['OPTIONS']['max_attempts'] must be")


# --- As a container runs it -------------------------------------------------


def test_subprocess_exit_codes(transactional_db):
    url = database_url()

    unhealthy = run_subprocess(url)
    add_worker("w1")
    healthy = run_subprocess(url)

    assert (unhealthy.returncode, unhealthy.stdout) == (1, "")
    assert unhealthy.stderr == "UNHEALTHY: no worker heartbeated in the last 1m\n"
    assert (healthy.returncode, healthy.stdout, healthy.stderr) == (
        0,
        "OK: 0 ready, 1 worker alive\n",
        "",
    )


@pytest.mark.parametrize(
    ("database_url", "expected"),
    [
        ("sqlite:////nonexistent-dir/for/dbtasks/health.sqlite3", "unable to open database file"),
        # Nothing listens on port 1 of the loopback interface.
        ("postgres://nobody@127.0.0.1:1/nothing", "127.0.0.1"),
    ],
)
def test_an_unreachable_database_is_one_line_never_a_traceback(database_url, expected):
    result = run_subprocess(database_url)

    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.startswith("UNHEALTHY: database error: ")
    assert expected in result.stderr
    assert result.stderr.count("\n") == 1
    assert "Traceback" not in result.stderr
