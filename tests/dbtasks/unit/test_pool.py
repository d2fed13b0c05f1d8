"""Task threads: which rows come after a wait long enough to health-check the connection."""

from __future__ import annotations

import queue
import threading

from dbtasks.models import DBTaskResult
from dbtasks.worker.pool import TaskThreads


class WatchedThreads(TaskThreads):
    """TaskThreads that say when a thread found no row and is about to wait for one."""

    def __init__(self, *args, **kwargs) -> None:
        self.waiting = threading.Event()
        super().__init__(*args, **kwargs)

    def _next_or_release(self) -> DBTaskResult | None:
        self.waiting.set()
        return super()._next_or_release()


def serve(ping_after: float, steps) -> list[tuple[int, bool]]:
    """Run one thread; ``steps(pool, ran)`` submits rows; returns (pk, waited) per row run."""
    ran: queue.SimpleQueue[tuple[int, bool]] = queue.SimpleQueue()
    release = threading.Event()

    def run(row: DBTaskResult, waited: bool) -> None:
        ran.put((row.pk, waited))
        if row.pk == 1:
            release.wait(timeout=60)  # row 1 holds the thread until the test lets go

    pool = WatchedThreads(1, run, ping_after=ping_after)
    try:
        steps(pool, release)
    finally:
        release.set()
        pool.shutdown(wait=True)
    return [ran.get_nowait() for _ in range(ran.qsize())]


def test_a_row_waiting_when_the_thread_is_done_is_not_pinged_for():
    def steps(pool: WatchedThreads, release: threading.Event) -> None:
        assert pool.waiting.wait(timeout=60)
        pool.submit(DBTaskResult(pk=1))  # the thread waited for it
        pool.submit(DBTaskResult(pk=2))  # queued while row 1 runs: found at once

    assert serve(0.0, steps) == [(1, True), (2, False)]


def test_a_short_wait_is_not_pinged_for_a_long_one_is():
    def submit_after_wait(pool: WatchedThreads, release: threading.Event) -> None:
        assert pool.waiting.wait(timeout=60)
        pool.submit(DBTaskResult(pk=3))

    # Any wait is long for a threshold of 0, none is for one of an hour.
    assert serve(0.0, submit_after_wait) == [(3, True)]
    assert serve(3600.0, submit_after_wait) == [(3, False)]
