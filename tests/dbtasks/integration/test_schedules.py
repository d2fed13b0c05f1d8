"""Recurring schedules: each tick is enqueued once, however often enqueue_due() runs."""

from __future__ import annotations

from datetime import UTC
from datetime import datetime

import pytest

from dbtasks.compat import task_backends
from dbtasks.models import DBScheduleTick
from dbtasks.models import DBTaskResult
from dbtasks.worker.schedules import enqueue_due
from tests.dbtasks.helpers import default_backend
from tests.dbtasks.helpers import override_options
from tests.dbtasks.helpers import race


def at(hour, minute, second=0):
    return datetime(2026, 3, 1, hour, minute, second, tzinfo=UTC)


@pytest.fixture
def every_five_minutes(settings):
    override_options(
        settings,
        schedules={
            "digest": {
                "task": "tests.tasks.echo",
                "cron": "*/5 * * * *",
                "args": ["digest"],
                "kwargs": {"full": True},
                "queue_name": "low_priority",
                "priority": 5,
            }
        },
    )
    return task_backends["default"]


def test_a_tick_is_enqueued_once_when_called_twice(db, every_five_minutes):
    assert enqueue_due(every_five_minutes, now=at(12, 2)) == 1
    assert enqueue_due(every_five_minutes, now=at(12, 3)) == 0

    row = DBTaskResult.objects.get()
    assert (row.task_path, row.queue_name, row.priority) == ("tests.tasks.echo", "low_priority", 5)
    assert row.arguments == {"args": ["digest"], "kwargs": {"full": True}}
    tick = DBScheduleTick.objects.get()
    assert (tick.schedule, tick.tick_at, tick.result_id) == ("digest", at(12, 0), str(row.pk))


def test_the_next_tick_is_enqueued_when_it_comes(db, every_five_minutes):
    enqueue_due(every_five_minutes, now=at(12, 2))

    assert enqueue_due(every_five_minutes, now=at(12, 4, 59)) == 0
    assert enqueue_due(every_five_minutes, now=at(12, 5)) == 1

    assert list(DBScheduleTick.objects.order_by("tick_at").values_list("tick_at", flat=True)) == [
        at(12, 0),
        at(12, 5),
    ]


def test_missed_ticks_are_caught_up_once(db, every_five_minutes):
    enqueue_due(every_five_minutes, now=at(12, 0))

    # No worker ran for an hour: only the latest tick is enqueued.
    assert enqueue_due(every_five_minutes, now=at(13, 1)) == 1
    last = DBScheduleTick.objects.order_by("tick_at").last()
    assert last is not None
    assert last.tick_at == at(13, 0)
    assert DBTaskResult.objects.count() == 2


def test_ticks_missed_by_a_late_worker_are_each_enqueued_in_order(db, settings):
    override_options(
        settings, schedules={"tick": {"task": "tests.tasks.echo", "cron": "* * * * * *"}}
    )
    backend = default_backend()
    enqueue_due(backend, now=at(12, 0, 0))

    # No worker checked for 3 seconds (a loaded machine): none of them is skipped.
    assert enqueue_due(backend, now=at(12, 0, 3)) == 3
    assert enqueue_due(backend, now=at(12, 0, 3)) == 0
    ticks = DBScheduleTick.objects.order_by("tick_at").values_list("tick_at", flat=True)
    assert list(ticks) == [at(12, 0, second) for second in range(4)]
    results = DBTaskResult.objects.order_by("pk").values_list("pk", flat=True)
    assert [tick.result_id for tick in DBScheduleTick.objects.order_by("tick_at")] == [
        str(pk) for pk in results
    ]


def test_a_tick_behind_the_latest_enqueued_one_is_never_enqueued(db, every_five_minutes):
    enqueue_due(every_five_minutes, now=at(12, 5))

    assert enqueue_due(every_five_minutes, now=at(12, 4)) == 0
    assert DBScheduleTick.objects.count() == 1


def test_workers_racing_for_a_tick_enqueue_it_once(transactional_db, every_five_minutes):
    counts = race(lambda: enqueue_due(default_backend(), now=at(12, 2)))

    assert sorted(counts) == [0, 0, 0, 1]
    assert DBTaskResult.objects.count() == 1
    assert DBScheduleTick.objects.count() == 1
