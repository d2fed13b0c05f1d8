"""The threads a worker runs tasks in (``--threads``).

A ``ThreadPoolExecutor`` would almost do, but its threads end without
closing the database connections Django opened in them. Those sessions then
outlive the worker: on Postgres an in-process worker (tests, a worker
embedded in another program) leaves the database "being accessed by other
users". Each thread here keeps its connection for its whole life, as the
worker's main thread does, and closes it when it ends.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable

from django.db import connections

from dbtasks.models import DBTaskResult


class TaskThreads:
    """``count`` threads that each call ``run(row, waited)`` for the rows submitted.

    ``waited`` says whether the thread sat idle until the row came, or found
    it queued as soon as it was done with the last one.
    """

    def __init__(self, count: int, run: Callable[[DBTaskResult, bool], None]) -> None:
        self._run = run
        # None tells one thread to stop. The worker submits a row only for a
        # thread that is idle or about to be (recording its last outcome), so
        # the queue never holds a backlog.
        self._inbox: queue.SimpleQueue[DBTaskResult | None] = queue.SimpleQueue()
        self._threads = [
            threading.Thread(target=self._serve, name=f"dbtasks-task-{number}", daemon=True)
            for number in range(1, count + 1)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, row: DBTaskResult) -> None:
        """Run ``row`` in the next idle thread."""
        self._inbox.put(row)

    def shutdown(self, *, wait: bool) -> None:
        """Stop every thread once it is idle; with ``wait``, until they have stopped."""
        for _ in self._threads:
            self._inbox.put(None)
        if wait:
            for thread in self._threads:
                thread.join()

    def _serve(self) -> None:
        try:
            while True:
                try:
                    row, waited = self._inbox.get_nowait(), False
                except queue.Empty:
                    row, waited = self._inbox.get(), True
                if row is None:
                    return
                self._run(row, waited)
        finally:
            connections.close_all()
