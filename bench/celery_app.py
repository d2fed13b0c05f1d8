"""The Celery arm: the same no-op task on Redis, with a tuned user's settings.

Broker and result backend are Redis (``BENCH_REDIS_URL``, results in
``BENCH_REDIS_RESULTS_URL``): results are kept, as the database backends keep
theirs, so a page can show a task's status. The settings below are what a
user who has read Celery's optimisation guide would pick for many short
tasks; docs/performance.md lists them. The app does not load Django: the task
touches no database, and Celery's Django fix-up would only add work per task.
"""

from __future__ import annotations

import os
import time

from celery import Celery

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/15")
RESULTS_URL = os.environ.get("BENCH_REDIS_RESULTS_URL", "redis://127.0.0.1:6379/14")

app = Celery("bench", broker=REDIS_URL, backend=RESULTS_URL)
app.conf.update(
    # Many tiny tasks: let each child have a few messages in hand.
    worker_prefetch_multiplier=16,
    # Early acknowledgement (Celery's default): one round trip less per task.
    task_acks_late=False,
    worker_disable_rate_limits=True,
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    # Same information as the database backends keep: status and return value.
    task_ignore_result=False,
    result_expires=3600,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)


@app.task(name="bench.noop")
def noop() -> None:
    """Do nothing: the benchmark measures the queue, not the task."""


@app.task(name="bench.stamp")
def stamp(enqueued: float) -> float:
    """Return when the task started (seconds since the epoch)."""
    return time.time()


@app.task(name="bench.pid")
def pid() -> int:
    """Return the id of the process that ran the task."""
    return os.getpid()
