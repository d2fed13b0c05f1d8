"""The tasks every arm runs: a no-op, and two tiny helpers the harness needs.

``noop`` is the task every figure measures. ``stamp`` returns the wall clock
at the top of its body, so pickup latency is measured the same way on every
arm (Celery included). ``pid`` tells the harness which worker process ran it,
so it knows every worker is up before a timed run starts.
"""

from __future__ import annotations

import os
import time

from django.tasks import task


@task
def noop() -> None:
    """Do nothing: the benchmark measures the queue, not the task."""


@task
def stamp(enqueued: float) -> float:
    """Return when the task started (seconds since the epoch)."""
    return time.time()


@task
def pid() -> int:
    """Return the id of the process that ran the task."""
    return os.getpid()
