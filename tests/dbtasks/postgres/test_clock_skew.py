"""Workers whose host clocks are 120 s off still keep time with the database server.

Each skewed worker runs with Debian's libfaketime preloaded: its whole
process sees the shifted time (the library rather than the ``faketime``
command, so the worker's pid is the one the test knows). Beside workers
with the true clock, every time decision must be the server's: no live
attempt taken for lost, no task run before it is due or left waiting, each
cron tick enqueued once and on time, no young row purged. (SQLite has no
server clock: all its workers share one machine's.)
"""

from __future__ import annotations

import itertools
from collections import Counter
from datetime import datetime
from datetime import timedelta
from pathlib import Path

import pytest

from dbtasks.clock import database_time
from dbtasks.models import SUCCESSFUL
from dbtasks.models import WAITING
from dbtasks.models import DBScheduleTick
from dbtasks.models import DBTaskResult
from tests import tasks
from tests.live import wait_until
from tests.testapp.models import TaskRun

LIBFAKETIME = next(
    (
        path
        for path in (
            Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1"),
            Path("/usr/lib/aarch64-linux-gnu/faketime/libfaketimeMT.so.1"),
            Path("/usr/lib/faketime/libfaketimeMT.so.1"),
        )
        if path.exists()
    ),
    None,
)

pytestmark = pytest.mark.skipif(
    LIBFAKETIME is None,
    reason="needs Debian's faketime (apt-get install faketime) to run workers with a skewed clock",
)

SKEWS = ["+120s", "-120s"]
# How late a loaded machine may start something: far below the skews, so
# that lateness by a worker's clock (two minutes) still fails.
LATE_BY_LOAD = timedelta(seconds=30)


def skewed(start_worker, skew: str, *args: str, **kwargs):
    """A worker process whose clock is ``skew`` off (the monotonic clock left alone)."""
    env = {
        "LD_PRELOAD": str(LIBFAKETIME),
        "FAKETIME": skew,
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
    }
    worker = start_worker(*args, env=env, **kwargs)
    worker.wait_registered()
    return worker


def now() -> datetime:
    return database_time("default")


def test_no_live_attempt_is_taken_for_lost(start_worker):
    """Three workers, clocks true, 120 s ahead, 120 s behind, each running a task
    twice as long as the heartbeat timeout (2 s) while the others look for lost ones."""
    start_worker("--queue", "default").wait_registered()
    skewed(start_worker, "+120s", "--queue", "other")
    skewed(start_worker, "-120s", "--queue", "low_priority")
    results = [
        tasks.record_run_and_wait.using(queue_name=queue).enqueue(queue, 4)
        for queue in ("default", "other", "low_priority")
    ]

    def all_done() -> bool:
        return all(
            DBTaskResult.objects.get(pk=result.id).status == SUCCESSFUL for result in results
        )

    wait_until(all_done, timeout=60, what="the three tasks to succeed")
    rows = DBTaskResult.objects.filter(pk__in=[result.id for result in results])
    assert [row.attempt_count for row in rows] == [1, 1, 1]
    assert Counter(TaskRun.objects.values_list("key", flat=True)) == {
        "default": 1,
        "other": 1,
        "low_priority": 1,
    }


@pytest.mark.parametrize("skew", SKEWS)
def test_a_task_runs_when_it_is_due_by_the_servers_clock(start_worker, skew):
    skewed(start_worker, skew)
    due = now() + timedelta(seconds=3)
    result = tasks.record_run.using(run_after=due).enqueue("due")

    wait_until(
        # SCHEDULED until staged, then READY until claimed.
        lambda: DBTaskResult.objects.get(pk=result.id).status not in WAITING,
        timeout=30,  # a worker 120 s behind would leave it READY for 2 minutes
        what="the task to be claimed",
    )
    claimed_seen_at = now()
    row = DBTaskResult.objects.get(pk=result.id)
    assert claimed_seen_at >= due, f"claimed {due - claimed_seen_at} early"
    assert row.last_attempted_at is not None
    assert due <= row.last_attempted_at < due + LATE_BY_LOAD


@pytest.mark.parametrize("skew", SKEWS)
def test_an_immediate_task_runs_at_once(start_worker, skew):
    skewed(start_worker, skew)
    result = tasks.record_run.enqueue("now")
    wait_until(
        lambda: DBTaskResult.objects.get(pk=result.id).status == SUCCESSFUL,
        timeout=30,
        what="the task to run",
    )
    row = DBTaskResult.objects.get(pk=result.id)
    assert row.last_attempted_at is not None
    assert row.last_attempted_at - row.enqueued_at < LATE_BY_LOAD


EVERY_TWO_SECONDS = {
    "schedules": {"tick": {"task": "tests.tasks.noop", "cron": "* * * * * */2"}},
}


def test_each_cron_tick_is_enqueued_once_and_on_time(start_worker):
    start_worker(options=EVERY_TWO_SECONDS).wait_registered()
    for skew in SKEWS:
        skewed(start_worker, skew, options=EVERY_TWO_SECONDS)

    wait_until(
        lambda: DBScheduleTick.objects.count() >= 5,
        timeout=60,
        what="five ticks to be enqueued",
    )
    ticks = list(DBScheduleTick.objects.order_by("tick_at"))
    enqueued = {
        str(row.pk): row.enqueued_at
        for row in DBTaskResult.objects.filter(task_path="tests.tasks.noop")
    }
    assert len(enqueued) == len(ticks)  # one task per tick
    for tick in ticks:
        late = enqueued[tick.result_id] - tick.tick_at
        # A worker 120 s ahead would enqueue ticks 2 minutes early, one
        # 120 s behind 2 minutes late.
        assert timedelta(0) <= late < LATE_BY_LOAD, (tick.tick_at, late)
    spacing = {later.tick_at - earlier.tick_at for earlier, later in itertools.pairwise(ticks)}
    assert spacing <= {timedelta(seconds=2 * n) for n in range(1, 4)}  # no tick twice


def test_a_skewed_worker_purges_only_what_is_old(start_worker):
    """A READY row seconds old survives a purge whose window is one minute."""
    young = tasks.noop.using(queue_name="low_priority").enqueue()
    old = tasks.noop.using(queue_name="low_priority").enqueue()
    DBTaskResult.objects.filter(pk=old.id).update(enqueued_at=now() - timedelta(minutes=5))
    purge = {"purge": {"finished": "1 minute", "unfinished": "1 minute", "interval": "200 ms"}}
    skewed(start_worker, "+120s", "--queue", "default", options=purge)

    wait_until(
        lambda: not DBTaskResult.objects.filter(pk=old.id).exists(),
        timeout=30,
        what="the old row to be purged",
    )
    assert DBTaskResult.objects.filter(pk=young.id).exists()
