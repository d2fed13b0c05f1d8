"""Times a worker writes beside a close come from the server's clock, not its host's.

A limited task's close hands its slot to the next BLOCKED row, which becomes
available "now"; a released workflow step too. On a host whose clock runs
two minutes ahead, "now" by the host's clock would keep those rows waiting
for two minutes (and promote rows not yet due two minutes early).
"""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from dbtasks import workflows
from dbtasks.models import SUCCESSFUL
from tests import tasks
from tests.dbtasks import limit_tasks
from tests.dbtasks.helpers import Running
from tests.dbtasks.helpers import override_options
from tests.dbtasks.helpers import row_of
from tests.live import wait_until

pytestmark = pytest.mark.postgres

AHEAD = timedelta(minutes=2)


def test_the_slot_passed_on_by_a_fast_hosts_close_is_available_at_once(transactional_db, settings):
    path = "tests.dbtasks.limit_tasks.limited"
    override_options(settings, tasks={path: {"concurrency": {"limit": 1}}})
    first, second = (limit_tasks.limited.enqueue("a", n) for n in range(2))

    with time_machine.travel(timezone.now() + AHEAD, tick=True):
        running = Running(threads=2)
        try:
            wait_until(
                lambda: row_of(second).status == SUCCESSFUL,
                timeout=30,  # by the host's clock it would wait two minutes
                what="the second task, given the first one's slot, to run",
            )
        finally:
            running.worker.request_stop()
            running.join(timeout=30)
    assert row_of(first).status == SUCCESSFUL


def test_a_step_released_by_a_fast_hosts_close_is_due_at_once(transactional_db):
    run = workflows.chain(workflows.call(tasks.add, 1, 2), workflows.call(tasks.add, 10)).enqueue()

    with time_machine.travel(timezone.now() + AHEAD, tick=True):
        running = Running(threads=2)
        try:
            wait_until(
                lambda: run.refresh().status == SUCCESSFUL,
                timeout=30,  # by the host's clock the second step would wait two minutes
                what="the chain's second step, released by the first, to run",
            )
        finally:
            running.worker.request_stop()
            running.join(timeout=30)
