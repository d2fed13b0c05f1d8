"""Asking running attempts to stop: cancel requests, timeouts, and threads that never return.

Each attempt a task thread starts gets an ``AttemptControl``
(``dbtasks.cancellation``), registered here by (row id, attempt number)
so that a request for one attempt never reaches the next one of the same
row. Three things ask an attempt to stop:

- a cancel request, or the attempt closed by someone else (the worker was
  presumed lost): the heartbeat's chores read the rows this worker runs
  (``dbtasks/worker/fencing.py``);
- its ``timeout``: the main thread's chores look at the deadlines
  (``due()``), and close an attempt that has not stopped ``SETTLE`` seconds
  later itself (``Maintenance.enforce_timeouts``);
- any worker code, through ``Worker.interrupt_attempt(row_id, attempt, reason)``.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import timedelta

from dbtasks.cancellation import AttemptControl
from dbtasks.cancellation import StopReason
from dbtasks.exceptions import TaskTimeout
from dbtasks.models import DBTaskResult
from dbtasks.worker.inflight import ClaimKey
from dbtasks.worker.inflight import claim_key

logger = logging.getLogger(__name__)

# How long an attempt past its timeout gets to stop on its own (an async
# task's cancellation, a sync task's next raise_if_cancelled()) before the
# worker closes it and stops counting its thread.
SETTLE = 1.0  # seconds


@dataclass(slots=True)
class Running:
    """One attempt in a task thread, and when its timeout falls (monotonic seconds)."""

    row: DBTaskResult
    control: AttemptControl
    timeout: timedelta | None
    deadline: float | None
    code_done: bool = False


class Interrupts:
    """The controls of the attempts this worker's threads are running."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: dict[ClaimKey, Running] = {}

    def __bool__(self) -> bool:
        with self._lock:
            return bool(self._running)

    def begin(self, row: DBTaskResult, timeout: timedelta | None) -> AttemptControl:
        """The calling thread starts ``row``'s attempt: return its control."""
        control = AttemptControl(row.pk, row.attempt_count)
        deadline = None if timeout is None else time.monotonic() + timeout.total_seconds()
        with self._lock:
            self._running[claim_key(row)] = Running(row, control, timeout, deadline)
        return control

    def end(self, row: DBTaskResult) -> None:
        """``row``'s attempt is over (or closed by the worker): forget it."""
        with self._lock:
            self._running.pop(claim_key(row), None)

    def interrupt(self, row_id: int, attempt: int, reason: StopReason) -> bool:
        """Ask attempt ``attempt`` of row ``row_id`` to stop.

        False if that attempt does not run here, or was asked already.
        """
        with self._lock:
            running = self._running.get((row_id, attempt))
        return running is not None and running.control.stop(reason)

    def snapshot(self) -> list[tuple[int, int]]:
        """The (row id, attempt) of each attempt whose code is still running."""
        with self._lock:
            return [key for key, running in self._running.items() if not running.code_done]

    def code_done(self, row: DBTaskResult) -> None:
        """``row``'s code returned: from now on its own thread closes the attempt."""
        with self._lock:
            running = self._running.get(claim_key(row))
            if running is not None:
                running.code_done = True

    def fence(self, row_id: int, attempt: int, reason: StopReason) -> bool:
        """``interrupt()``, unless the attempt's code is done (its thread closed it itself).

        The thread marks its code done (``code_done``) before it writes the
        outcome, so an attempt the caller found closed and that is not done
        here was closed by someone else.
        """
        with self._lock:
            running = self._running.get((row_id, attempt))
            if running is None or running.code_done:
                return False
        return running.control.stop(reason)

    def due(self, now: float) -> tuple[list[Running], list[Running]]:
        """Attempts past their timeout: (to ask to stop now, past ``SETTLE`` too: to close)."""
        with self._lock:
            late = [
                (running, running.deadline)
                for running in self._running.values()
                if running.deadline is not None and now >= running.deadline
            ]
        to_stop, to_close = [], []
        for running, deadline in late:
            if running.control.reason is None:
                running.control.stop(
                    TaskTimeout(
                        f"Attempt {running.row.attempt_count} of task id={running.row.pk} "
                        f"ran past its timeout of {running.timeout}."
                    )
                )
                to_stop.append(running)
            elif now >= deadline + SETTLE:
                to_close.append(running)
        return to_stop, to_close
