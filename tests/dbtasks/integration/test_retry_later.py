"""RetryLater: a task asks for a longer wait than the backoff (HTTP Retry-After)."""

from __future__ import annotations

import datetime as dt

from dbtasks.models import SCHEDULED
from dbtasks.models import DBTaskResult
from tests import tasks
from tests.conftest import run_worker
from tests.dbtasks.helpers import Clock
from tests.dbtasks.helpers import run_worker_at


def test_the_retry_waits_at_least_the_delay_asked_for(transactional_db):
    # The test settings' backoff is 0 ** n = 0 seconds: without RetryLater
    # the task would be READY again at once.
    result = tasks.asks_to_retry_later.enqueue(90)

    run_worker()

    row = DBTaskResult.objects.get(pk=result.id)
    assert row.status == SCHEDULED
    failed_at = row.attempts.get().stopped_at
    assert row.available_after - failed_at == dt.timedelta(seconds=90)


def test_the_backoff_wins_when_it_is_longer(transactional_db, settings):
    settings.TASKS = {
        **settings.TASKS,
        "default": {
            **settings.TASKS["default"],
            "OPTIONS": {**settings.TASKS["default"]["OPTIONS"], "backoff_factor": 200},
        },
    }
    result = tasks.asks_to_retry_later.enqueue(90)

    run_worker()

    row = DBTaskResult.objects.get(pk=result.id)
    assert row.available_after - row.attempts.get().stopped_at == dt.timedelta(seconds=200)


def test_retry_later_still_counts_attempts(transactional_db):
    result = tasks.asks_to_retry_later.enqueue(1)
    # The worker's clock, moved past each wait (a worker's own clock is the
    # database server's, which no time machine moves).
    clock = Clock()

    for _ in range(3):
        run_worker_at(clock)
        clock.advance(seconds=2)

    result.refresh()
    assert result.status == "FAILED"
    assert result.attempts == 3
