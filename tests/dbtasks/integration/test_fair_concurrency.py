"""Concurrency limits that share the workers: one key's backlog waits behind the others.

The worker here has one thread, so the order tasks start in is the order
they were claimed.
"""

from __future__ import annotations

import pytest

from dbtasks import workflows
from dbtasks.bulk import enqueue_many
from dbtasks.models import BLOCKED
from dbtasks.models import READY
from dbtasks.models import SUCCESSFUL
from dbtasks.models import DBSemaphore
from dbtasks.options import OptionError
from dbtasks.options import parse_options
from tests.dbtasks import limit_tasks
from tests.dbtasks.helpers import Running
from tests.dbtasks.helpers import override_options
from tests.dbtasks.helpers import row_of
from tests.live import wait_until

LIMITED = "tests.dbtasks.limit_tasks.limited"


def limit(settings, **concurrency) -> None:
    override_options(settings, tasks={LIMITED: {"concurrency": {"key": "tenant", **concurrency}}})


def statuses(results) -> list[str]:
    return [row_of(result).status for result in results]


def start_order(results) -> list[int]:
    """The results' positions in ``results``, in the order they started."""
    starts = []
    for n, result in enumerate(results):
        started_at = row_of(result).started_at
        assert started_at is not None
        starts.append((started_at, n))
    return [n for _, n in sorted(starts)]


def run_one_thread_until_done(results) -> None:
    running = Running(threads=1)
    try:
        wait_until(
            lambda: statuses(results) == [SUCCESSFUL] * len(results),
            timeout=60,
            what="every task to succeed",
        )
    finally:
        running.worker.request_stop()
        running.join(timeout=30)


def test_a_task_given_a_slot_joins_the_claim_behind_tasks_enqueued_meanwhile(
    transactional_db, settings
):
    limit(settings, limit=1)
    backlog = [limit_tasks.limited.enqueue("a", n) for n in range(4)]
    other = limit_tasks.limited.enqueue("b", 0)

    run_one_thread_until_done([*backlog, other])

    # a0 held the slot first; the next "a" got its slot after b0 was READY.
    assert start_order([*backlog, other]) == [0, 4, 1, 2, 3]


def test_urgent_tasks_of_a_fair_key_reorder_only_their_own_key(transactional_db, settings):
    limit(settings, limit=1, fair=True)
    backlog = [limit_tasks.limited.enqueue("a", n) for n in range(3)]
    urgent = [limit_tasks.limited.using(priority=20).enqueue("a", n) for n in range(3, 6)]
    other = limit_tasks.limited.enqueue("b", 0)

    assert [row_of(result).claim_priority for result in [*urgent, other]] == [0, 0, 0, 0]
    assert row_of(urgent[0]).priority == 20
    run_one_thread_until_done([*backlog, *urgent, other])

    order = start_order([*backlog, *urgent, other])
    # a0 had the slot; "b" comes next, then a's urgent tasks before a's others.
    assert order == [0, 6, 3, 4, 5, 1, 2]


def test_without_fair_an_urgent_backlog_is_claimed_first(db, settings):
    limit(settings, limit=1)
    urgent = limit_tasks.limited.using(priority=20).enqueue("a", 0)
    other = limit_tasks.limited.enqueue("b", 0)

    assert (row_of(urgent).claim_priority, row_of(other).claim_priority) == (20, 0)


def test_fair_must_be_a_boolean():
    concurrency = {"limit": 1, "fair": "yes"}
    with pytest.raises(OptionError, match=r"\['fair'\] must be True or False, got 'yes'"):
        parse_options("default", ["default"], {"tasks": {LIMITED: {"concurrency": concurrency}}})


def test_enqueue_many_takes_a_slot_per_row(db, settings):
    limit(settings, limit=1)

    results = enqueue_many(limit_tasks.limited, [(("a", 1), {}), (("a", 2), {}), (("b", 1), {})])

    assert statuses(results) == [READY, BLOCKED, READY]
    assert [row_of(result).concurrency_key for result in results] == [
        f"task:{LIMITED}:a",
        f"task:{LIMITED}:a",
        f"task:{LIMITED}:b",
    ]
    assert DBSemaphore.objects.get(key=f"task:{LIMITED}:a").in_use == 1


def test_group_members_past_the_limit_wait_for_a_slot_and_run(transactional_db, settings):
    # One key per tenant over the whole queue: the members and their callback share it.
    key = "tests.dbtasks.limit_tasks.tenant_key"
    override_options(settings, concurrency={"limit": 1, "key": key})
    run = workflows.group(
        [workflows.call(limit_tasks.limited, "a", n) for n in range(3)],
        then=workflows.call(limit_tasks.report, tenant="a"),
    ).enqueue()

    # The callback waits on the group, without a slot; one member holds it.
    assert statuses(run.results) == [READY, BLOCKED, BLOCKED, BLOCKED]
    assert DBSemaphore.objects.get().in_use == 1
    run_one_thread_until_done(run.results)

    assert start_order(run.results) == [0, 1, 2, 3]
    assert DBSemaphore.objects.get().in_use == 0
