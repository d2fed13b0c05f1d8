"""A worker claims back a row it has just run: its bookkeeping keeps the new attempt.

A failed attempt with no backoff makes the row READY again at once, and the
worker that ran it may claim it again while the old attempt's thread is
still finishing. The old thread's last step must forget the old attempt
only: if it forgot the row, housekeeping would take the new, running
attempt for a claim whose reply never arrived, hand it back, and the task
would run twice.
"""

from __future__ import annotations

import pytest

from dbtasks.models import READY
from dbtasks.models import RUNNING
from dbtasks.models import DBTaskResult
from dbtasks.worker import Worker
from dbtasks.worker import WorkerOptions
from dbtasks.worker.inflight import InFlight
from dbtasks.worker.outcomes import record_attempt
from tests import tasks
from tests.dbtasks.helpers import default_backend
from tests.dbtasks.helpers import row_of


def test_finishing_the_old_attempt_keeps_the_new_one() -> None:
    in_flight = InFlight(threads=2)
    first = DBTaskResult(pk=7, attempt_count=1)  # never saved: InFlight reads two fields
    in_flight.add([first])
    in_flight.queue(first)
    assert in_flight.start(first)
    in_flight.code_done(first)  # the old thread now writes its outcome

    again = DBTaskResult(pk=7, attempt_count=2)  # the same row, claimed back meanwhile
    in_flight.add([again])
    in_flight.queue(again)
    in_flight.finish(first, ran=True)  # the old thread is done

    assert in_flight.row_ids() == {7}
    assert len(in_flight) == 1
    assert in_flight.free_threads() == 1  # the new attempt holds a thread
    assert in_flight.start(again)  # its thread may still take it
    started, waiting = in_flight.unstarted()
    assert [(row.pk, row.attempt_count) for row in started] == [(7, 2)]
    assert waiting == []


@pytest.mark.django_db(transaction=True)
def test_housekeeping_leaves_a_row_claimed_back_alone() -> None:
    """The old thread finishes after the claim-back; the new attempt stays RUNNING."""
    worker = Worker(default_backend(), WorkerOptions(threads=2))
    result = tasks.always_fails.enqueue()

    # Attempt 1, as the main thread and a task thread would drive it.
    [first] = worker.claim()
    worker.in_flight.queue(first)
    assert worker.in_flight.start(first)
    worker.in_flight.code_done(first)
    record_attempt(
        first,
        worker_id=worker.id,
        policy=worker.config.policy(first.queue_name),
        now=worker.clock(),
        error=ValueError("attempt 1 fails"),
    )
    assert first.status == READY  # the test settings retry at once

    # Attempt 2 is claimed before the old thread's last step.
    [again] = worker.claim()
    assert (again.pk, again.attempt_count) == (first.pk, 2)
    worker.in_flight.queue(again)
    worker.runner._finished(first)

    worker._maintenance.hand_back_lost_claims()

    row = row_of(result)
    assert (row.status, row.worker_id, row.attempt_count) == (RUNNING, worker.id, 2)
    assert worker.in_flight.row_ids() == {first.pk}
