"""Claiming ahead: under a backlog of quick tasks, claim the next few with this one.

A claim is a write transaction whatever the number of rows it takes: for a
task that runs in a millisecond, claiming it costs as much as running it.
So when the last tasks were quick, a claim takes a few rows more than there
are free threads, as many as the threads will start within ``BUDGET``
(50 ms) at the pace the recent tasks ran. Those wait in the pool's queue
(``InFlight.add(rows, ahead=n)`` marks them) and the next free thread takes
them.
A task that takes longer than the budget makes it claim nothing ahead; a
worker with no backlog finds no more rows to claim anyway.

A row claimed ahead is RUNNING for this worker from its claim, as any
claimed row is, so the guarantees are those of every claim:

- stopping hands it back unstarted, its attempt uncounted
  (``stopping.give_back``, ``Runner._run_claimed``);
- if the worker dies, lost-worker recovery closes it as a *suspect*
  attempt, one of several in flight, which never fails its task and runs
  it alone next time (``recovery.py``): after a crash a few more tasks run
  alone than the threads alone would give;
- one that waited ``OVERDUE`` (1 s) for a thread, behind a task slower than
  those before it, is handed back (``Worker.tend``), so a fleet's other
  workers can take it.

Its attempt's ``started_at`` is the claim's time, up to the budget earlier
than its code began.
"""

from __future__ import annotations

import threading

# How long a row claimed ahead should wait for its thread, at the recent pace.
BUDGET = 0.05  # seconds
# The most rows one claim takes ahead.
MOST = 50
# A row claimed ahead that waited this long for a thread goes back to the queue.
OVERDUE = 1.0  # seconds
# The weight of the newest task's time in the running average.
WEIGHT = 0.2


class ClaimAhead:
    """How many rows a worker with ``threads`` task threads claims ahead, from its tasks' pace."""

    def __init__(self, threads: int, *, budget: float | None = None, most: int = MOST) -> None:
        self.threads = threads
        # Read when the worker starts, so a test can set the module's BUDGET.
        self.budget = BUDGET if budget is None else budget
        self.most = most
        self._lock = threading.Lock()
        self._average: float | None = None  # seconds a task holds its thread, on average

    def ran(self, seconds: float) -> None:
        """A task held its thread ``seconds``: claim, run and close."""
        with self._lock:
            if self._average is None:
                self._average = seconds
            else:
                self._average += WEIGHT * (seconds - self._average)

    def extra(self) -> int:
        """Rows to claim beyond one per free thread: 0 until a task has run."""
        with self._lock:
            average = self._average
        if average is None:
            return 0
        if average <= 0:
            return self.most
        return min(self.most, int(self.threads * self.budget / average))
