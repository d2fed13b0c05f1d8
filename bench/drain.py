"""Figure 2: drain throughput with 1 and with 2 worker processes.

Workers start on an empty queue and each runs a warm-up task first. Then
``count`` no-op tasks become ready at once: one committed bulk insert for the
database backends (plus the NOTIFY ``enqueue()`` would send), and for Celery
an ``add_consumer`` on a queue filled beforehand. The clock runs from that
moment to the last ``finished_at`` (Celery: the last ``date_done``) the
system recorded: tasks/s = count / that time. It includes the wait for the
first claim (a polling worker may be asleep: up to 1 s for db_worker's
default interval, 250 ms for dbtasks); the JSON records that lag.

"2 worker processes" is two worker commands for the database backends and
one Celery worker with ``--concurrency=2`` (prefork): two processes running
tasks in each case.
"""

from __future__ import annotations

from typing import Any

from bench.harness import CELERY
from bench.harness import DBTASKS
from bench.harness import TASKSDB
from bench.harness import Arm
from bench.harness import Metric
from bench.orchestrator import Bench
from bench.queues import queue_for
from bench.queues import running_workers
from bench.workers import wait_until

NAME = "drain"
TITLE = "2. Drain throughput (backlog of no-op tasks)"
METRICS = (
    Metric("workers_1", "1 worker process", "/s"),
    Metric("workers_2", "2 worker processes", "/s"),
)


def params(quick: bool) -> dict[str, Any]:
    return {"count": 500 if quick else 5000, "processes": [1, 2]}


def run(bench: Bench) -> None:
    arms = bench.arms_for((DBTASKS, TASKSDB, CELERY))
    bench.interleave(NAME, arms, params(bench.quick), timeout=1800)


def measure(arm: Arm, phase: str, params: dict[str, Any]) -> dict[str, Any]:
    count = params["count"]
    queue = queue_for(arm)
    result: dict[str, Any] = {}
    for processes in params["processes"]:
        queue.reset()
        with running_workers(queue, processes) as workers:
            queue.prepare_backlog(count)
            started = queue.release_backlog(count)
            wait_until(
                lambda: queue.finished_count() >= count,
                timeout=max(300, count / 10),
                interval=0.25,
                watch=workers,
                what=f"{count} tasks to finish",
            )
            finished = queue.last_finished_at()
            first = queue.first_started_at() if hasattr(queue, "first_started_at") else started
            failed = getattr(queue, "failed_count", lambda: 0)()
        if failed:
            raise RuntimeError(f"{failed} of {count} no-op tasks failed on {arm.name}.")
        result[f"workers_{processes}"] = count / (finished - started)
        result[f"seconds_{processes}"] = round(finished - started, 3)
        # How long the first task waited (a polling worker's idle delay): part
        # of the time above; pickup latency is figure 3.
        result[f"first_start_lag_{processes}"] = round(first - started, 3)
    queue.reset()
    return result
