"""Recurring schedules: which tick is due (dbtasks.worker.schedules.latest_tick)."""

from __future__ import annotations

from datetime import UTC
from datetime import datetime

import pytest

from dbtasks.options import Schedule
from dbtasks.worker.schedules import latest_tick


def at(hour, minute, second=0, day=1):
    return datetime(2026, 3, day, hour, minute, second, tzinfo=UTC)


@pytest.mark.parametrize(
    ("cron", "now", "tick"),
    [
        # Exactly on a tick: that tick, not the one before it.
        ("*/5 * * * *", at(12, 0), at(12, 0)),
        ("*/5 * * * *", at(12, 0, 30), at(12, 0)),
        ("*/5 * * * *", at(12, 4, 59), at(12, 0)),
        ("*/5 * * * *", at(12, 5), at(12, 5)),
        ("0 3 * * *", at(2, 59, 59, day=2), at(3, 0, day=1)),
        ("0 3 * * *", at(3, 0, day=2), at(3, 0, day=2)),
        ("0 3 * * *", at(3, 0, 1, day=2), at(3, 0, day=2)),
        ("* * * * *", at(0, 0), at(0, 0)),
    ],
)
def test_latest_tick_is_the_last_one_at_or_before_now(cron, now, tick):
    schedule = Schedule(name="s", task_path="tests.tasks.noop", cron=cron)

    assert latest_tick(schedule, now) == tick
