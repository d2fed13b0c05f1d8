"""Per-minute summaries: each ended minute counted once, by whichever worker gets there first."""

from __future__ import annotations

from datetime import UTC
from datetime import datetime
from datetime import timedelta

import pytest
from django.db import IntegrityError
from django.utils import timezone

from dbtasks.minutes import CANCELLATION_PATH
from dbtasks.minutes import DURATION_BUCKETS
from dbtasks.minutes import MINUTE
from dbtasks.minutes import DBMinuteSummary
from dbtasks.minutes import QueueMinute
from dbtasks.minutes import minute_of
from dbtasks.models import CANCELLED_TASKS
from dbtasks.models import DBTaskAttempt
from dbtasks.models import DBTaskResult
from dbtasks.ops.recent import recent_activity
from dbtasks.worker import summaries
from dbtasks.worker.summaries import SETTLE
from dbtasks.worker.summaries import count_minute
from dbtasks.worker.summaries import due_minutes
from dbtasks.worker.summaries import summarise_due_minutes
from tests import tasks
from tests.conftest import run_worker
from tests.ops_data import cancel
from tests.ops_data import database_backend


def move_attempts(minute: datetime, *, seconds: float = 0.5) -> None:
    """Put every attempt in ``minute``, each lasting ``seconds``."""
    stopped = minute + timedelta(seconds=30)
    DBTaskAttempt.objects.update(
        started_at=stopped - timedelta(seconds=seconds), stopped_at=stopped
    )


def test_a_minute_counts_outcomes_gave_up_cancelled_and_durations(transactional_db):
    tasks.echo.enqueue(1)
    tasks.echo.using(queue_name="low_priority").enqueue(2)
    tasks.always_fails.enqueue()  # three failed attempts, then gave up
    run_worker()
    cancelled = tasks.noop.enqueue()
    cancel(cancelled.id)
    minute = minute_of(timezone.now()) - 5 * MINUTE
    move_attempts(minute, seconds=0.3)
    DBTaskResult.objects.filter(pk=cancelled.id).update(cancelled_at=minute)

    counted = count_minute(database_backend(), minute)

    default = counted["default"]
    assert (default.successful, default.failed, default.gave_up, default.cancelled) == (1, 3, 1, 1)
    assert default.duration_sum == pytest.approx(4 * 0.3)
    assert dict(zip(DURATION_BUCKETS, default.buckets, strict=True))[0.25] == 0
    assert dict(zip(DURATION_BUCKETS, default.buckets, strict=True))[0.5] == 4
    low = counted["low_priority"]
    assert (low.successful, low.failed, low.gave_up, low.cancelled) == (1, 0, 0, 0)
    assert low.duration_sum == pytest.approx(0.3)
    assert low.buckets == (0,) * 5 + (1,) * 7
    # The minutes either side are empty.
    assert count_minute(database_backend(), minute - MINUTE) == {}
    assert count_minute(database_backend(), minute + MINUTE) == {}


def test_a_minute_is_due_once_it_has_ended_and_settled(db):
    backend = database_backend()
    minute = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    end = minute + MINUTE

    assert minute not in due_minutes(backend, now=end)
    assert minute not in due_minutes(backend, now=end + SETTLE - timedelta(seconds=1))
    assert due_minutes(backend, now=end + SETTLE)[-1] == minute
    # Only the last hour is counted, however long nothing was.
    assert len(due_minutes(backend, now=end + SETTLE)) == 60


def test_each_minute_is_written_once_and_the_next_call_goes_on_from_there(db):
    backend = database_backend()
    now = minute_of(timezone.now()) + SETTLE

    assert summarise_due_minutes(backend, now=now, limit=10) == 10
    assert summarise_due_minutes(backend, now=now, limit=100) == 50
    assert summarise_due_minutes(backend, now=now, limit=100) == 0
    minutes = list(DBMinuteSummary.objects.order_by("minute").values_list("minute", flat=True))
    assert minutes == [now - SETTLE - (60 - index) * MINUTE for index in range(60)]


def test_a_worker_that_loses_the_race_moves_on(db, monkeypatch):
    backend = database_backend()
    now = minute_of(timezone.now()) + SETTLE
    last = now - SETTLE - MINUTE
    real_count = summaries.count_minute

    def count_while_another_worker_writes(backend, minute):
        counted = real_count(backend, minute)
        if minute == last:  # another worker writes this minute meanwhile
            DBMinuteSummary.objects.create(backend_name=backend.alias, minute=minute, queues={})
        return counted

    monkeypatch.setattr(summaries, "count_minute", count_while_another_worker_writes)

    assert summarise_due_minutes(backend, now=now, limit=100) == 59
    assert DBMinuteSummary.objects.filter(minute=last).count() == 1
    with pytest.raises(IntegrityError):
        DBMinuteSummary.objects.create(backend_name="default", minute=last, queues={})


def test_summaries_older_than_two_hours_are_forgotten(db):
    backend = database_backend()
    now = minute_of(timezone.now()) + SETTLE
    DBMinuteSummary.objects.create(backend_name="default", minute=now - timedelta(hours=3))
    DBMinuteSummary.objects.create(backend_name="other", minute=now - timedelta(hours=3))

    summarise_due_minutes(backend, now=now, limit=1)

    assert not DBMinuteSummary.objects.filter(
        backend_name="default", minute__lt=now - timedelta(hours=2)
    ).exists()
    assert DBMinuteSummary.objects.filter(backend_name="other").count() == 1


def test_the_worker_counts_ended_minutes_as_part_of_its_chores(transactional_db):
    run_worker()

    latest = DBMinuteSummary.objects.order_by("-minute").first()
    assert latest is not None
    assert latest.minute <= timezone.now() - MINUTE - SETTLE + MINUTE


def test_the_read_side_sums_the_hour_per_queue_and_per_minute(db):
    backend = database_backend()
    now = minute_of(timezone.now()) + timedelta(seconds=20)
    one = QueueMinute(successful=2, failed=1, gave_up=1, duration_sum=1.5)
    for minutes_ago in (1, 2, 61):
        DBMinuteSummary.objects.create(
            backend_name="default",
            minute=minute_of(now) - minutes_ago * MINUTE,
            queues={"default": one.to_json(), "mail": QueueMinute(cancelled=1).to_json()},
        )

    recent = recent_activity(backend, now=now)

    # The minute 61 ago is outside the hour the chart shows.
    assert recent.per_queue() == {
        "default": one + one,
        "mail": QueueMinute(cancelled=2),
    }
    chart = recent.per_minute(60)
    assert [(bar.total, bar.counted) for bar in chart[-3:]] == [(3, True), (3, True), (0, False)]
    assert recent.counted_until == minute_of(now)


def test_a_run_stopped_by_a_cancellation_is_counted_as_cancelled_not_failed(transactional_db):
    result = tasks.always_fails.enqueue()
    run_worker()  # three failed attempts, then FAILED
    minute = minute_of(timezone.now()) - 5 * MINUTE
    move_attempts(minute)
    # As a cancel of the running task leaves it: its last run stopped by TaskCancelled.
    DBTaskResult.objects.filter(pk=result.id).update(cancel_requested_at=minute)
    DBTaskAttempt.objects.filter(number=3).update(exception_class_path=CANCELLATION_PATH)

    counted = count_minute(database_backend(), minute)["default"]

    assert (counted.failed, counted.gave_up, counted.cancelled) == (2, 0, 1)
    assert counted.attempts == counted.buckets[-1] == 2  # the histogram counts real runs
    row = DBTaskResult.objects.get(pk=result.id)
    assert DBTaskResult.objects.filter(CANCELLED_TASKS).get() == row
