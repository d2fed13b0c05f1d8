"""A worker's bookkeeping of the rows it has claimed and not closed yet.

Each claim is known by its row id *and* attempt number. A worker may claim
back a row it has just run (a quick retry, or a row handed back): keyed by
id alone, the old thread's last step would forget the new attempt, and
housekeeping would then take the running attempt for a lost claim and run
the task again.
"""

from __future__ import annotations

import threading
import time

from dbtasks.models import DBTaskResult

ClaimKey = tuple[int, int]  # (row id, attempt number)


def claim_key(row: DBTaskResult) -> ClaimKey:
    return (row.pk, row.attempt_count)


class InFlight:
    """Claimed rows whose attempt is not closed yet, and how many threads they use.

    Of those rows, *running* ones have not finished their code (so they hold
    a thread) and *waiting* ones have no thread yet; some of those were
    claimed *ahead* of a free thread (``ahead.py``). *Chaining* threads
    (SQLite) are claiming their own next task. While a row to run alone is
    here (``alone.py``), no thread is free. Every method takes the lock;
    ``lock`` is public so a caller can make several calls one step.
    """

    def __init__(self, threads: int) -> None:
        self.threads = threads
        self.lock = threading.RLock()
        self._rows: dict[ClaimKey, DBTaskResult] = {}
        self._running: set[ClaimKey] = set()
        self._waiting: dict[ClaimKey, float] = {}  # since when (time.monotonic())
        self._ahead: set[ClaimKey] = set()
        self._alone: set[ClaimKey] = set()
        self.chaining = 0
        self.claimed = 0  # rows claimed in this worker's life
        self.processed = 0  # attempts run to their end

    def __len__(self) -> int:
        with self.lock:
            return len(self._rows)

    def rows(self) -> list[DBTaskResult]:
        with self.lock:
            return list(self._rows.values())

    def row_ids(self) -> set[int]:
        with self.lock:
            return {pk for pk, _ in self._rows}

    def idle(self) -> bool:
        """Nothing claimed and no thread claiming."""
        with self.lock:
            return not self._rows and not self.chaining

    def free_threads(self) -> int:
        """Threads free for another task, as the main thread claims for them.

        Postgres (``Worker.overlap``): a task whose code has returned no
        longer counts, so the next claim runs while the last outcome is
        written, on two connections at once; the row claimed meanwhile waits
        those few milliseconds for its thread. SQLite: a thread that
        finished a task claims its next one itself (``Runner._chain``), so
        it still counts.
        """
        with self.lock:
            if self._alone:
                return 0
            return self.threads - len(self._running) - self.chaining

    def running_alone(self) -> bool:
        """A row to run alone is claimed and not closed yet."""
        with self.lock:
            return bool(self._alone)

    def add(self, rows: list[DBTaskResult], *, ahead: int = 0) -> None:
        """Rows just claimed: each will hold a thread until its code is done.

        The last ``ahead`` of them were claimed ahead of a free thread.
        """
        with self.lock:
            self.claimed += len(rows)
            for row in rows:
                self._rows[claim_key(row)] = row
                self._running.add(claim_key(row))
                if row.run_alone:
                    self._alone.add(claim_key(row))
            for row in rows[len(rows) - ahead :]:
                self._ahead.add(claim_key(row))

    def queue(self, row: DBTaskResult) -> None:
        """``row`` is handed to the threads and waits for one."""
        with self.lock:
            self._waiting[claim_key(row)] = time.monotonic()

    def waiting(self) -> int:
        """Rows handed to the threads that no thread has taken yet."""
        with self.lock:
            return len(self._waiting)

    def start(self, row: DBTaskResult) -> bool:
        """A thread takes ``row``; False if it was given back while it waited."""
        with self.lock:
            if self._waiting.pop(claim_key(row), None) is None:
                return False
            self._ahead.discard(claim_key(row))
            return True

    def overdue(self, seconds: float) -> list[DBTaskResult]:
        """Rows claimed ahead that waited over ``seconds`` for a thread, taken off the queue.

        No thread starts them now (``start`` says False); the caller hands them back.
        """
        with self.lock:
            since = time.monotonic() - seconds
            keys = [key for key in self._ahead if self._waiting.get(key, since + 1) <= since]
            for key in keys:
                del self._waiting[key]
                self._ahead.discard(key)
            return [self._rows[key] for key in keys]

    def code_done(self, row: DBTaskResult) -> None:
        """The task's code returned; its outcome is still being written."""
        with self.lock:
            self._running.discard(claim_key(row))

    def finish(self, row: DBTaskResult, *, ran: bool) -> None:
        """``row``'s attempt is closed (``ran``) or handed back (not ``ran``)."""
        with self.lock:
            self._rows.pop(claim_key(row), None)
            self._running.discard(claim_key(row))
            self._alone.discard(claim_key(row))
            self._waiting.pop(claim_key(row), None)
            self._ahead.discard(claim_key(row))
            if ran:
                self.processed += 1

    def unstarted(self) -> tuple[list[DBTaskResult], list[DBTaskResult]]:
        """Split the rows into (started, never started), forgetting the waits."""
        with self.lock:
            rows = list(self._rows.values())
            started = [row for row in rows if claim_key(row) not in self._waiting]
            waiting = [row for row in rows if claim_key(row) in self._waiting]
            self._waiting.clear()
            self._ahead.clear()
        return started, waiting
