"""4 worker processes, a limit of 10 starts per second, 20 seconds of work.

The starts are the attempts' ``started_at``, in the database's time as the
claims recorded them: no window of one second, sliding over them, may hold
more than 10, and the rate must come near the limit, or a limiter that
merely slowed everything down would pass.
"""

from __future__ import annotations

import bisect
from datetime import timedelta

import pytest
from django.db import connection
from django.db import transaction

from dbtasks.models import SUCCESSFUL
from dbtasks.models import DBTaskAttempt
from dbtasks.models import DBTaskResult
from tests import tasks
from tests.dbtasks.helpers import override_options
from tests.live import wait_until
from tests.ops_data import PATIENT_TIMEOUT

pytestmark = [pytest.mark.process, pytest.mark.slow]

LIMIT = 10
PERIOD = timedelta(seconds=1)
SECONDS = 20
TASKS = LIMIT * SECONDS
WORKERS = 4
OPTIONS = {
    "heartbeat_timeout": PATIENT_TIMEOUT,
    "tasks": {"tests.tasks.echo": {"rate_limit": {"limit": LIMIT, "period": "1 second"}}},
}


def busiest_window(starts: list) -> int:
    """The most starts in any window [start, start + PERIOD), over every start."""
    return max(bisect.bisect_left(starts, start + PERIOD) - i for i, start in enumerate(starts))


def test_starts_never_pass_the_limit_across_workers(start_worker, settings):
    override_options(settings, **OPTIONS)
    with transaction.atomic():
        for n in range(TASKS):
            tasks.echo.enqueue(n)
    # Not --oneshot: a oneshot worker stops when its claim finds nothing,
    # which a throttled key does between slots.
    workers = [
        start_worker("--threads", "2", "--id", f"w{n}", options=OPTIONS, log_level="WARNING")
        for n in range(WORKERS)
    ]
    wait_until(
        lambda: DBTaskResult.objects.filter(status=SUCCESSFUL).count() == TASKS,
        timeout=SECONDS * 4,
        what="every rate-limited task to succeed",
    )
    assert [worker.stop() for worker in workers] == [0] * WORKERS

    starts = sorted(DBTaskAttempt.objects.values_list("started_at", flat=True))
    assert len(starts) == TASKS  # one attempt each: none failed or was retried
    by_worker = DBTaskAttempt.objects.values_list("worker_id", flat=True).distinct()
    assert len({worker_id.split(":")[0] for worker_id in by_worker}) > 1  # shared, not one
    busiest = busiest_window(starts)
    assert busiest <= LIMIT, busiest
    rate = (len(starts) - 1) / (starts[-1] - starts[0]).total_seconds()
    assert rate >= 0.6 * LIMIT, rate
    print(  # noqa: T201
        f"{connection.vendor}: {TASKS} starts in {(starts[-1] - starts[0]).total_seconds():.1f}s "
        f"({rate:.2f}/s, limit {LIMIT}/s), busiest 1s window {busiest}"
    )
