"""A schedule ticking every second, three workers: every tick runs exactly once."""

from __future__ import annotations

import time
from collections import Counter

import pytest

from dbtasks.models import DBScheduleTick
from dbtasks.models import DBTaskResult
from tests.live import wait_until
from tests.testapp.models import TaskRun

pytestmark = pytest.mark.process

EVERY_SECOND = {
    "schedules": {
        # croniter's sixth field is seconds.
        "tick": {"task": "tests.tasks.record_run", "cron": "* * * * * *", "args": ["tick"]},
    }
}


def test_three_workers_enqueue_each_tick_once(start_worker):
    workers = [start_worker("--threads", "2", options=EVERY_SECOND) for _ in range(3)]
    for worker in workers:
        worker.wait_registered()

    time.sleep(10)  # the length of the experiment, not a wait for a condition
    for worker in workers:
        worker.send(15)  # SIGTERM: stop claiming, finish, exit
    for worker in workers:
        assert worker.wait() == 0

    ticks = list(DBScheduleTick.objects.order_by("tick_at").values_list("tick_at", flat=True))
    results = DBTaskResult.objects.filter(task_path="tests.tasks.record_run")
    print(f"{len(ticks)} ticks in 10 s, from {ticks[0]} to {ticks[-1]}")  # noqa: T201
    # About one tick a second, each enqueued once (the unique row per tick),
    assert len(ticks) >= 8
    assert len(set(ticks)) == len(ticks)
    assert results.count() == len(ticks)
    # with no second skipped while workers were running,
    seconds = [(tick - ticks[0]).total_seconds() for tick in ticks]
    assert seconds == [float(n) for n in range(len(ticks))]
    # and each one run once: a tick enqueued just before the stop is left READY,
    # so a worker without the schedule runs what is left.
    start_worker("--threads", "2")
    wait_until(
        lambda: not results.exclude(status="SUCCESSFUL").exists(),
        timeout=30,
        what="every tick's task to finish",
    )
    assert Counter(TaskRun.objects.values_list("key", flat=True)) == {"tick": len(ticks)}
