"""How many rows a claim takes ahead, and which are overdue (``dbtasks/worker/ahead.py``)."""

from __future__ import annotations

from dbtasks.models import DBTaskResult
from dbtasks.worker.ahead import MOST
from dbtasks.worker.ahead import ClaimAhead
from dbtasks.worker.inflight import InFlight


def test_nothing_ahead_until_a_task_has_run():
    assert ClaimAhead(1).extra() == 0


def test_quick_tasks_fill_the_budget_up_to_the_most():
    ahead = ClaimAhead(1, budget=0.05)
    ahead.ran(0.001)
    assert ahead.extra() == MOST


def test_as_many_as_the_threads_start_within_the_budget():
    ahead = ClaimAhead(4, budget=0.05)
    ahead.ran(0.02)
    assert ahead.extra() == 10  # 4 threads x 50 ms / 20 ms each


def test_tasks_slower_than_the_budget_claim_nothing_ahead():
    ahead = ClaimAhead(1, budget=0.05)
    ahead.ran(0.2)
    assert ahead.extra() == 0


def test_a_slow_task_among_quick_ones_shrinks_what_is_claimed_ahead():
    ahead = ClaimAhead(1, budget=0.05)
    ahead.ran(0.001)
    ahead.ran(1.0)  # the running average: 0.001 + 0.2 x (1.0 - 0.001), about 0.2 s
    assert ahead.extra() == 0


def rows(*pks: int) -> list[DBTaskResult]:
    return [DBTaskResult(id=pk, attempt_count=1, run_alone=False) for pk in pks]


def test_only_rows_claimed_ahead_and_still_waiting_are_overdue():
    in_flight = InFlight(threads=1)
    claimed = rows(1, 2, 3)
    in_flight.add(claimed, ahead=2)  # rows 2 and 3 came beyond the free thread
    for row in claimed:
        in_flight.queue(row)
    assert in_flight.start(claimed[1])  # a thread took row 2

    assert in_flight.overdue(3600) == []  # none waited an hour
    assert [row.pk for row in in_flight.overdue(0)] == [3]
    # Taken off the queue: a thread that comes for it now leaves it alone.
    assert not in_flight.start(claimed[2])
    assert in_flight.waiting() == 1  # row 1, claimed for the free thread, still waits
