"""The threads a worker runs tasks in (``--threads``).

A ``ThreadPoolExecutor`` would almost do, but its threads end without
closing the database connections Django opened in them. Those sessions then
outlive the worker: on Postgres an in-process worker (tests, a worker
embedded in another program) leaves the database "being accessed by other
users". Each thread here keeps its connection while it has work, and
closes it after a second idle or when it ends: an idle worker holds none
for its task threads (the connection bound in the README's guarantees).

A thread stuck in a task past its timeout can be *retired*: a new thread
takes its place, so the worker keeps its capacity, and the old one ends as
soon as its task returns, if ever (``hung()`` counts those still stuck).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable

from django.db import connections

from dbtasks.models import DBTaskResult

# How long a task thread keeps its connection with no task to run.
RELEASE_AFTER = 1.0  # seconds
# A thread that waited less than this for its next row used its connection a
# moment ago, like one that went straight on: it is not health-checked. Under
# a backlog a thread waits a few milliseconds for the main thread's claim,
# and a ping each time cost about one round trip in three.
PING_AFTER = 0.1  # seconds


class TaskThreads:
    """``count`` threads that each call ``run(row, waited)`` for the rows submitted.

    ``waited`` says whether the thread sat idle at least ``ping_after``
    seconds until the row came, or found it (nearly) as soon as it was done
    with the last one.
    """

    def __init__(
        self,
        count: int,
        run: Callable[[DBTaskResult, bool], None],
        *,
        ping_after: float = PING_AFTER,
    ) -> None:
        self._run = run
        self._ping_after = ping_after
        # None tells one thread to stop. The worker submits a row only for a
        # thread that is idle or about to be (recording its last outcome), so
        # the queue never holds a backlog.
        self._inbox: queue.SimpleQueue[DBTaskResult | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._started = 0
        self._threads: list[threading.Thread] = []
        self._retired: list[threading.Thread] = []
        for _ in range(count):
            self._start_thread()

    def _start_thread(self) -> None:
        self._started += 1
        thread = threading.Thread(
            target=self._serve, name=f"dbtasks-task-{self._started}", daemon=True
        )
        self._threads.append(thread)
        thread.start()

    def retire(self, thread: threading.Thread) -> None:
        """Stop counting ``thread`` (stuck in a task) and start one in its place."""
        with self._lock:
            if thread not in self._threads:
                return
            self._threads.remove(thread)
            self._retired.append(thread)
            self._start_thread()

    def is_retired(self, thread: threading.Thread | None = None) -> bool:
        """Whether ``thread`` (default: the calling one) was retired."""
        with self._lock:
            return (thread or threading.current_thread()) in self._retired

    def hung(self) -> int:
        """Retired threads still stuck in their task."""
        with self._lock:
            self._retired = [thread for thread in self._retired if thread.is_alive()]
            return len(self._retired)

    def submit(self, row: DBTaskResult) -> None:
        """Run ``row`` in the next idle thread."""
        self._inbox.put(row)

    def shutdown(self, *, wait: bool) -> None:
        """Stop every thread once it is idle; with ``wait``, until they have stopped."""
        with self._lock:
            threads = list(self._threads)  # not the retired: they may never return
        for _ in threads:
            self._inbox.put(None)
        if wait:
            for thread in threads:
                thread.join()

    def _next_or_release(self) -> DBTaskResult | None:
        """Wait for a row; after ``RELEASE_AFTER`` idle, without holding a connection."""
        try:
            return self._inbox.get(timeout=RELEASE_AFTER)
        except queue.Empty:
            # Give the connection back to the server (or the pool) rather
            # than hold it until the next task; a busy thread keeps its own.
            connections.close_all()
            return self._inbox.get()

    def _serve(self) -> None:
        try:
            while True:
                try:
                    row, waited = self._inbox.get_nowait(), False
                except queue.Empty:
                    idle_since = time.monotonic()
                    row = self._next_or_release()
                    waited = time.monotonic() - idle_since >= self._ping_after
                if row is None:
                    return
                self._run(row, waited)
                if self.is_retired():
                    return
        finally:
            connections.close_all()
