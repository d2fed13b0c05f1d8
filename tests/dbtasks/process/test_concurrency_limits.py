"""4 worker processes x 2 threads: never more than N tasks of a key run at once."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db import transaction

from dbtasks.models import SUCCESSFUL
from dbtasks.models import DBSemaphore
from dbtasks.models import DBTaskResult
from tests.dbtasks import limit_tasks
from tests.dbtasks.helpers import override_options
from tests.live import wait_until
from tests.ops_data import PATIENT_TIMEOUT
from tests.testapp.models import TaskRun

pytestmark = [pytest.mark.process, pytest.mark.slow]

LIMIT = 2
TENANTS = ("a", "b")
PER_TENANT = 12
WORKERS = 4
OPTIONS = {
    "heartbeat_timeout": PATIENT_TIMEOUT,
    "tasks": {
        "tests.dbtasks.limit_tasks.limited": {"concurrency": {"limit": LIMIT, "key": "tenant"}}
    },
}


def max_overlap(tenant: str) -> int:
    """The most tasks of ``tenant`` between their start and end records at once."""
    events = []
    for key, ran_at in TaskRun.objects.filter(key__contains=f":{tenant}:").values_list(
        "key", "ran_at"
    ):
        # At the same instant an end counts before a start: the lenient reading.
        events.append((ran_at, 0 if key.startswith("end:") else 1))
    running = highest = 0
    for _, kind in sorted(events):
        running += 1 if kind else -1
        highest = max(highest, running)
    return highest


def test_no_more_than_the_limit_run_at_once_per_key(start_worker, settings):
    override_options(settings, **OPTIONS)
    with transaction.atomic():
        for n in range(PER_TENANT):
            for tenant in TENANTS:
                limit_tasks.limited.enqueue(tenant, n)

    # Not --oneshot: a oneshot worker may stop in the moment between a close
    # and the slot it passes on; these run until every task has succeeded.
    workers = [
        start_worker("--threads", "2", "--id", f"w{n}", options=OPTIONS, log_level="WARNING")
        for n in range(WORKERS)
    ]
    total = PER_TENANT * len(TENANTS)
    wait_until(
        lambda: DBTaskResult.objects.filter(status=SUCCESSFUL).count() == total,
        timeout=120,
        what="every limited task to succeed",
    )
    assert [worker.stop() for worker in workers] == [0] * WORKERS
    assert TaskRun.objects.count() == 2 * PER_TENANT * len(TENANTS)
    overlaps = {tenant: max_overlap(tenant) for tenant in TENANTS}
    # 8 threads for two tenants: without the limit, up to 8 of one tenant at once.
    assert all(overlap <= LIMIT for overlap in overlaps.values()), overlaps
    assert set(DBSemaphore.objects.values_list("in_use", flat=True)) == {0}
    print(f"{connection.vendor}: max overlap per tenant {overlaps} (limit {LIMIT})")  # noqa: T201
