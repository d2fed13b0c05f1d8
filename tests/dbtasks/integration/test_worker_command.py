"""``manage.py dbtasks_worker``: its flags, run in this process with CLI strings."""

from __future__ import annotations

import os
import re

import pytest
from django.core.management import CommandError
from django.core.management import call_command
from django.core.management import execute_from_command_line

from dbtasks.compat import BaseTaskBackend
from dbtasks.compat import TaskResultStatus
from dbtasks.management.commands.dbtasks_worker import Command
from dbtasks.models import DBTaskAttempt
from dbtasks.models import DBTaskResult
from dbtasks.models import DBWorker
from tests import tasks
from tests.conftest import run_worker
from tests.dbtasks.helpers import row_of
from tests.testapp.models import TaskRun


def parse(*args):
    return Command().create_parser("manage.py", "dbtasks_worker").parse_args(args)


def test_defaults():
    options = parse()

    assert options.backend == "default"
    assert options.queues is None
    assert options.excluding == []
    assert options.name is None
    assert options.threads == 1
    assert options.oneshot is False
    # In seconds, like the flags (argparse skips type= for non-string defaults).
    assert options.delay_min == 0.05
    assert options.delay_max == 0.25
    assert options.max_tasks is None
    assert options.grace == 25.0


def test_flags_are_parsed():
    options = parse(
        "--id=mailer",
        "-q",
        "default,low_priority",
        "--queue",
        "other",
        "--excluding",
        "other",
        "--backend",
        "default",
        "-o",
        "--delay-min",
        "10",
        "--delay-max",
        "1500",
        "--threads",
        "4",
        "--max-tasks",
        "100",
        "--grace",
        "2.5",
    )

    assert options.name == "mailer"
    assert options.queues == ["default", "low_priority", "other"]
    assert options.excluding == ["other"]
    assert options.oneshot is True
    assert (options.delay_min, options.delay_max) == (0.01, 1.5)
    assert (options.threads, options.max_tasks, options.grace) == (4, 100, 2.5)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--threads", "0"], "Error: argument --threads: '0' must be at least 1"),
        (["--threads", "two"], "Error: argument --threads: 'two' is not a whole number"),
        (["--max-tasks", "-3"], "Error: argument --max-tasks: '-3' must be at least 1"),
        (
            ["--delay-min", "-1"],
            "Error: argument --delay-min: '-1' must be between 0 and 3600000 ms",
        ),
        (
            ["--delay-max", "soon"],
            "Error: argument --delay-max: 'soon' is not a number of milliseconds",
        ),
        (["--grace", "-1"], "Error: argument --grace: '-1' must be between 0 and 86400 seconds"),
        (["--queue", " , "], "Error: argument --queue/-q: expected one or more queue names"),
        (["--bogus"], "Error: unrecognized arguments: --bogus"),
        (
            ["--queue", "emails"],
            "Unknown queue(s) emails; the backend has default, low_priority, other.",
        ),
        (["--excluding", "default,low_priority,other"], "No queue left to serve."),
        (
            ["--delay-min", "500", "--delay-max", "100"],
            "--delay-min must not be more than --delay-max.",
        ),
    ],
)
def test_bad_flags_are_refused_clearly(db, args, message):
    with pytest.raises(CommandError) as excinfo:
        call_command("dbtasks_worker", *args)

    assert str(excinfo.value) == message
    assert not DBWorker.objects.exists()


def test_an_unknown_backend_is_refused(db, settings):
    settings.TASKS = {**settings.TASKS, "other": settings.TASKS["default"]}

    with pytest.raises(CommandError) as excinfo:
        call_command("dbtasks_worker", "--backend", "nope")

    assert str(excinfo.value).startswith("settings.TASKS has no backend 'nope'; it has 'default'")
    assert str(excinfo.value).endswith(", 'other'.")


def test_a_backend_that_is_not_dbtasks_is_refused(db, settings):
    # django.tasks' ImmediateBackend (or the backport's, on Django 5.2).
    immediate = BaseTaskBackend.__module__.rsplit(".", 1)[0] + ".immediate.ImmediateBackend"
    settings.TASKS = {**settings.TASKS, "immediate": {"BACKEND": immediate}}

    with pytest.raises(CommandError) as excinfo:
        call_command("dbtasks_worker", "--backend", "immediate")

    assert str(excinfo.value) == (
        "Backend 'immediate' is ImmediateBackend, which is not a dbtasks DatabaseBackend."
    )


def test_bad_flags_on_the_command_line_exit_with_usage(capsys):
    with pytest.raises(SystemExit) as excinfo:
        execute_from_command_line(["manage.py", "dbtasks_worker", "--threads", "0"])

    assert excinfo.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: manage.py dbtasks_worker")
    assert err.endswith(
        "manage.py dbtasks_worker: error: argument --threads: '0' must be at least 1\n"
    )


def test_a_misconfigured_backend_is_refused(db, settings):
    settings.TASKS = {
        "default": {
            "BACKEND": "dbtasks.backend.DatabaseBackend",
            "OPTIONS": {"max_attempts": "3"},
        }
    }

    with pytest.raises(CommandError) as excinfo:
        call_command("dbtasks_worker", "--oneshot")

    assert str(excinfo.value) == (
        "TASKS['default']['OPTIONS']['max_attempts'] must be a positive integer, got '3'."
    )


def test_oneshot_runs_what_is_ready_then_says_so(transactional_db):
    for n in range(3):
        tasks.record_run.enqueue(f"t{n}")

    out, _ = run_worker("--id", "solo")

    assert TaskRun.objects.count() == 3
    worker_id = DBTaskAttempt.objects.values_list("worker_id", flat=True).distinct().get()
    assert re.fullmatch(rf"solo:{os.getpid()}:[0-9a-f]{{8}}", worker_id)
    assert out == (
        f"Worker {worker_id} serving default, low_priority, other\n"
        f"Worker {worker_id} stopped after 3 tasks.\n"
    )
    # Unregistered on the way out.
    assert not DBWorker.objects.exists()


def test_verbosity_0_is_quiet(transactional_db):
    tasks.noop.enqueue()

    out, _ = run_worker("-v", "0")

    assert out == ""
    assert DBTaskResult.objects.get().status == TaskResultStatus.SUCCESSFUL


def test_each_run_has_its_own_worker_id(transactional_db):
    first = tasks.noop.enqueue()
    run_worker("--id", "same")
    second = tasks.noop.enqueue()
    run_worker("--id", "same")

    first.refresh()
    second.refresh()
    assert first.worker_ids[0] != second.worker_ids[0]


@pytest.mark.parametrize(
    ("args", "ran"),
    [
        (["-q", "low_priority"], {"low_priority"}),
        (["--queue", "default,other"], {"default", "other"}),
        (["-q", "default", "-q", "other"], {"default", "other"}),
        (["--excluding", "other"], {"default", "low_priority"}),
        (["--queue", "default,other", "--excluding", "other"], {"default"}),
        ([], {"default", "low_priority", "other"}),
    ],
)
def test_queue_and_excluding_choose_the_queues(transactional_db, args, ran):
    for queue in ("default", "low_priority", "other"):
        tasks.record_run.using(queue_name=queue).enqueue(queue)

    run_worker(*args)

    assert set(TaskRun.objects.values_list("key", flat=True)) == ran
    assert (
        set(
            DBTaskResult.objects.filter(status=TaskResultStatus.READY).values_list(
                "queue_name", flat=True
            )
        )
        == {"default", "low_priority", "other"} - ran
    )


def test_max_tasks_stops_after_that_many(transactional_db):
    for n in range(5):
        tasks.record_run.enqueue(f"t{n}")

    out, _ = run_worker("--max-tasks", "2", "--threads", "4")

    assert TaskRun.objects.count() == 2
    assert DBTaskResult.objects.filter(status=TaskResultStatus.READY).count() == 3
    assert out.endswith(" stopped after 2 tasks.\n")


def test_max_tasks_lets_running_tasks_finish_whatever_the_grace(transactional_db):
    # --max-tasks is a recycle, not a shutdown: the grace period does not apply.
    result = tasks.sleep_for.enqueue(0.5)

    run_worker("--max-tasks", "1", "--grace", "0")

    assert row_of(result).status == TaskResultStatus.SUCCESSFUL


def test_threads_run_tasks_at_the_same_time(transactional_db):
    for n in range(4):
        tasks.record_run.enqueue(f"t{n}", seconds=1)

    run_worker("--threads", "4")

    rows = DBTaskResult.objects.all()
    assert {row.status for row in rows} == {TaskResultStatus.SUCCESSFUL}
    # Every task started before any of them finished.
    starts = [row.started_at for row in rows if row.started_at]
    ends = [row.finished_at for row in rows if row.finished_at]
    assert len(starts) == len(ends) == 4
    assert max(starts) < min(ends)
