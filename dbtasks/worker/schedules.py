"""Recurring tasks: enqueue each tick of a cron schedule exactly once.

Schedules are declared in the backend's OPTIONS (``"schedules"``). Every
worker calls ``enqueue_due()`` about once a second. A tick is enqueued by
inserting a ``DBScheduleTick`` row (unique per schedule and tick) in the same
transaction as the task row, so however many workers race, one wins and the
others hit the unique constraint and move on.

Missed ticks: a tick no worker checked in time (a loaded machine, a paused
worker) is still enqueued, late, as long as the schedule's previous tick was
enqueued within ``CATCH_UP``: every tick after it comes, in order. After a
longer gap (no worker running) only the most recent tick is enqueued (one
catch-up run, never a burst replaying the outage).
"""

from __future__ import annotations

import logging
from datetime import datetime
from datetime import timedelta
from typing import TYPE_CHECKING

from croniter import croniter
from django.db import IntegrityError
from django.utils.module_loading import import_string

from dbtasks.compat import Task
from dbtasks.options import Schedule
from dbtasks.sql.transactions import short_transaction

if TYPE_CHECKING:
    from dbtasks.backend import DatabaseBackend

logger = logging.getLogger(__name__)

# How far back a worker still enqueues the ticks it missed one by one.
CATCH_UP = timedelta(minutes=1)


def latest_tick(schedule: Schedule, now: datetime) -> datetime:
    """The most recent tick of ``schedule`` at or before ``now``."""
    # croniter's get_next() and get_prev() both skip their start time, so
    # at exactly 12:00 "*/5 * * * *" would give 11:55. Looking forward from
    # one second earlier finds a tick at ``now`` itself.
    following = croniter(schedule.cron, now - timedelta(seconds=1)).get_next(datetime)
    if following <= now:
        return following
    return croniter(schedule.cron, now).get_prev(datetime)


def due_ticks(schedule: Schedule, now: datetime, previous: datetime | None) -> list[datetime]:
    """The ticks to enqueue at ``now``, oldest first, after the ``previous`` one enqueued."""
    latest = latest_tick(schedule, now)
    if previous is not None and previous >= latest:
        return []  # enqueued already
    if previous is None or now - previous > CATCH_UP:
        return [latest]
    ticks = []
    tick = croniter(schedule.cron, previous).get_next(datetime)
    while tick <= latest:
        ticks.append(tick)
        tick = croniter(schedule.cron, tick).get_next(datetime)
    return ticks


def enqueue_due(backend: DatabaseBackend, *, now: datetime) -> int:
    """Enqueue each schedule's due ticks not enqueued yet; return how many."""
    from dbtasks.models import DBScheduleTick

    enqueued = 0
    for schedule in backend.config.schedules:
        ticks = DBScheduleTick.objects.using(backend.db_alias).filter(schedule=schedule.name)
        previous = ticks.order_by("-tick_at").values_list("tick_at", flat=True).first()
        due = due_ticks(schedule, now.replace(microsecond=0), previous)
        if not due:
            continue
        task = import_string(schedule.task_path)
        if not isinstance(task, Task):
            logger.error("Schedule %r: %r is not a task", schedule.name, schedule.task_path)
            continue
        task = task.using(
            backend=backend.alias,
            queue_name=schedule.queue_name,
            priority=schedule.priority,
        )
        for tick in due:
            try:
                with short_transaction(
                    backend.db_alias, idle_limit=backend.config.heartbeat_timeout
                ):
                    DBScheduleTick.objects.using(backend.db_alias).create(
                        schedule=schedule.name, tick_at=tick
                    )
                    result = task.enqueue(*schedule.args, **schedule.kwargs)
                    ticks.filter(tick_at=tick).update(result_id=result.id)
            except IntegrityError:
                continue  # another worker enqueued this tick first
            enqueued += 1
            logger.info(
                "Schedule %r: enqueued tick %s as task id=%s", schedule.name, tick, result.id
            )
    return enqueued
