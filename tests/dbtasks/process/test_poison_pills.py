"""Poison pills: a task that kills its own worker process takes down only itself.

One worker process with 6 threads, restarted by the test (as a supervisor
would) each time it dies, runs 6 tasks: 5 ``tests.tasks.record_run`` that
sleep 1 s and a pill (``tests.tasks.kills_its_process``) that waits until
the 5 have started, then ends the process with ``os._exit`` or SIGKILL.
``max_attempts`` is 3 (tests/settings.py), heartbeats every 200 ms, a worker
presumed lost after 2 s.

The first death has 6 attempts in flight: each is a suspect, none is held
against its task, and all 6 run alone from then on. Each of the 5 then runs
alone and succeeds; the pill dies twice more, each time alone, so blamed,
and ends FAILED on its third attempt saying the process died while it ran
alone. (Before, every death was a WorkerLost attempt for every task in the
process: innocent tasks caught in three deaths ended FAILED.)
"""

from __future__ import annotations

import time
from datetime import timedelta
from itertools import pairwise

import pytest
from django.db import connection
from django.db.models import Count

from dbtasks.compat import TaskResultStatus
from dbtasks.models import DBTaskAttempt
from dbtasks.models import DBTaskResult
from tests import tasks
from tests.live import wait_until
from tests.testapp.models import TaskRun

pytestmark = pytest.mark.process

INNOCENTS = 5
WORKER_LOST = "dbtasks.exceptions.WorkerLost"
SUSPECT = f"and {INNOCENTS} other tasks (no heartbeat for 0:00:02). Any of them may have ended"
ALONE = (
    "The worker process died while this task ran alone (exit by the task itself: "
    "likely os._exit, a signal or a crash in C code)."
)


def supervise(start_worker, until, *, max_deaths=10):
    """Keep one worker process running, starting another whenever it dies, until ``until()``.

    Return how many times the worker died.
    """
    start = lambda: start_worker("--threads", str(INNOCENTS + 1), "--id", "pills")  # noqa: E731
    worker, deaths = start(), 0

    def done():
        nonlocal worker, deaths
        if not worker.running:
            deaths += 1
            assert deaths <= max_deaths, f"the worker died {deaths} times"
            worker = start()
        return until()

    wait_until(done, timeout=180, what="every task to finish", interval=0.1)
    return deaths


@pytest.mark.parametrize("how", ["exit", "kill"])
def test_a_poison_pill_fails_alone_and_the_tasks_that_shared_its_process_succeed(start_worker, how):
    keys = [f"innocent-{n}" for n in range(INNOCENTS)]
    innocents = [tasks.record_run.enqueue(key, 1.0) for key in keys]
    pill = tasks.kills_its_process.enqueue("pill", how, keys)
    started = time.monotonic()

    deaths = supervise(
        start_worker,
        lambda: not DBTaskResult.objects.exclude(status__in=["SUCCESSFUL", "FAILED"]).exists(),
    )
    elapsed = time.monotonic() - started

    for result in innocents:
        result.refresh()
        assert result.status == TaskResultStatus.SUCCESSFUL
        # One run cut short by the pill (a suspect, not held against it), one alone.
        assert result.attempts == 2
        (error,) = result.errors
        assert error.exception_class_path == WORKER_LOST
        assert SUSPECT in error.traceback, error.traceback
    pill.refresh()
    assert pill.status == TaskResultStatus.FAILED
    assert pill.attempts == 3  # max_attempts: the suspect run counted, but could not fail it
    assert [error.exception_class_path for error in pill.errors] == [WORKER_LOST] * 3
    assert SUSPECT in pill.errors[0].traceback
    for error in pill.errors[1:]:
        assert ALONE in error.traceback, error.traceback
    assert deaths == 3

    # The runs after the first death were alone: none overlapped another in its worker
    # (each of the 5 sleeps 1 s; 0.1 s of slack for the clocks of the close and the claim).
    first_worker = pill.worker_ids[0]
    later = DBTaskAttempt.objects.exclude(worker_id=first_worker).order_by("started_at")
    assert later.count() == INNOCENTS + 2
    for worker_id in set(later.values_list("worker_id", flat=True)):
        runs_here = list(later.filter(worker_id=worker_id))
        for before, after in pairwise(runs_here):
            assert after.started_at >= before.stopped_at - timedelta(seconds=0.1), (
                before,
                after,
            )
    runs = dict(TaskRun.objects.values_list("key").annotate(runs=Count("id")))
    assert runs == {"pill": 3, **dict.fromkeys(keys, 2)}
    print(  # noqa: T201 - the figures docs/reliability.md quotes
        f"\npoison pill ({how}) on {connection.vendor}: {deaths} worker deaths, "
        f"{INNOCENTS} tasks beside it SUCCESSFUL after 2 runs each, the pill FAILED after "
        f"{pill.attempts} runs; {elapsed:.1f}s"
    )
