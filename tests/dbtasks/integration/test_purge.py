"""Purging old results: ``manage.py dbtasks_purge`` and the worker's periodic purge."""

from __future__ import annotations

import threading
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError
from django.core.management import call_command
from django.db import connection
from django.db import transaction
from django.utils import timezone

from dbtasks.compat import TaskResultStatus
from dbtasks.models import DBTaskAttempt
from dbtasks.models import DBTaskResult
from dbtasks.worker import Worker
from dbtasks.worker import WorkerOptions
from tests import tasks
from tests.conftest import run_worker
from tests.dbtasks.helpers import default_backend
from tests.dbtasks.helpers import override_options
from tests.live import patience
from tests.live import wait_until

READY = TaskResultStatus.READY
RUNNING = TaskResultStatus.RUNNING
SUCCESSFUL = TaskResultStatus.SUCCESSFUL
FAILED = TaskResultStatus.FAILED


def make(key, status, *, age_days, finished=True):
    """A row in ``status`` enqueued (and maybe finished) ``age_days`` ago, with one attempt.

    In one transaction: a worker purging meanwhile sees the row whole, never
    old enough to delete before its attempt is in.
    """
    with transaction.atomic():
        result = tasks.echo.enqueue(key)
        at = timezone.now() - timedelta(days=age_days)
        DBTaskResult.objects.filter(pk=result.id).update(
            status=status,
            enqueued_at=at,
            finished_at=at if finished else None,
            attempt_count=1,
        )
        DBTaskAttempt.objects.create(
            result_id=result.id,
            number=1,
            worker_id="w",
            started_at=at,
            stopped_at=at,
            outcome=SUCCESSFUL if status == SUCCESSFUL else FAILED,
        )
    return key


def remaining():
    return set(DBTaskResult.objects.values_list("arguments__args__0", flat=True))


def purge(*args):
    out = StringIO()
    call_command("dbtasks_purge", *args, stdout=out)
    return out.getvalue()


def make_rows():
    """Rows on either side of the test settings' policy (finished 10 days, unfinished 20)."""
    make("old-ok", SUCCESSFUL, age_days=11)
    make("old-failed", FAILED, age_days=11)
    make("new-ok", SUCCESSFUL, age_days=9)
    make("old-ready", READY, age_days=21, finished=False)
    make("old-running", RUNNING, age_days=21, finished=False)
    make("mid-ready", READY, age_days=15, finished=False)


def test_finished_uses_the_policy_by_default(db):
    make_rows()
    out = purge("finished")

    assert out == "Deleted 2 finished task result(s) older than 10 days, 0:00:00.\n"
    assert remaining() == {"new-ok", "old-ready", "old-running", "mid-ready"}
    # Their attempts went with them.
    assert DBTaskAttempt.objects.count() == 4


def test_unfinished_uses_the_policy_by_default(db):
    make_rows()
    out = purge("unfinished")

    assert out == "Deleted 2 unfinished task result(s) older than 20 days, 0:00:00.\n"
    assert remaining() == {"old-ok", "old-failed", "new-ok", "mid-ready"}


def test_before_overrides_the_policy(db):
    make_rows()
    assert purge("finished", "--before", "1 day") == (
        "Deleted 3 finished task result(s) older than 1 day, 0:00:00.\n"
    )
    assert purge("unfinished", "--before", "12 days") == (
        "Deleted 3 unfinished task result(s) older than 12 days, 0:00:00.\n"
    )
    assert remaining() == set()


def test_limit_deletes_at_most_that_many(db):
    make_rows()
    assert purge("finished", "--before", "1 day", "--limit", "2").startswith("Deleted 2 ")
    assert purge("finished", "--before", "1 day", "--limit", "2").startswith("Deleted 1 ")
    assert purge("finished", "--before", "1 day", "--limit", "2").startswith("Deleted 0 ")


def test_batches_add_up(db, settings):
    make_rows()
    override_options(settings, purge={"finished": "1 day", "batch_size": 1})

    assert purge("finished").startswith("Deleted 3 ")


def test_a_policy_that_keeps_forever_needs_before(db, settings):
    override_options(settings, purge={"finished": None})

    with pytest.raises(CommandError) as excinfo:
        purge("finished")

    assert str(excinfo.value) == (
        "The purge policy keeps finished results forever; pass --before to purge anyway."
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["finished", "--before", "30"],
            (
                "Error: argument --before: --before needs a unit, got '30': write for example "
                "'30 seconds' or '30 days'."
            ),
        ),
        (
            ["finished", "--before", "soon"],
            (
                "Error: argument --before: --before must be a duration such as '10 days' or "
                "'30 seconds', got 'soon'."
            ),
        ),
        (["unfinished", "--limit", "0"], "Error: argument --limit: '0' must be at least 1"),
        (
            ["everything"],
            (
                "Error: argument which: invalid choice: 'everything' "
                "(choose from 'finished', 'unfinished')"
            ),
        ),
        ([], "Error: the following arguments are required: which"),
        (
            ["finished", "--backend", "nope"],
            "settings.TASKS has no backend 'nope'; it has 'default'.",
        ),
    ],
)
def test_bad_arguments_are_refused_clearly(db, settings, args, message):
    settings.TASKS = {"default": settings.TASKS["default"]}

    with pytest.raises(CommandError) as excinfo:
        purge(*args)

    assert str(excinfo.value) == message


def test_the_worker_purges_when_it_starts(transactional_db, settings):
    make_rows()
    override_options(
        settings, purge={"finished": "10 days", "unfinished": "20 days", "interval": "1 hour"}
    )

    run_worker()

    assert remaining() == {"new-ok", "mid-ready"}


def test_the_worker_purges_again_at_every_interval(transactional_db, settings):
    override_options(settings, purge={"finished": "10 days", "interval": "200 ms"})
    # The worker serves a queue make() does not use: it must purge the rows,
    # not run them (running one would write the attempt make() writes).
    worker = Worker(default_backend(), WorkerOptions(queues=("other",)))

    def run():
        try:
            worker.run()
        finally:
            connection.close()  # the main loop's connection, opened in this thread

    thread = threading.Thread(target=run)
    thread.start()
    try:
        for n in range(2):
            # Rows that grow old while the worker runs go at its next purge.
            make(f"old-{n}", SUCCESSFUL, age_days=11)
            wait_until(
                lambda: not DBTaskResult.objects.exists(),
                timeout=30,
                what="the worker to purge the old rows",
            )
    finally:
        worker.request_stop()
        thread.join(timeout=patience(30))
    assert not thread.is_alive()
