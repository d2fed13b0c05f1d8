"""Figure 3: pickup latency of an idle worker at its default settings.

One worker is started and warmed up, then left idle for two seconds (so a
polling worker has backed off to its longest delay). Then ``count`` single
``stamp.enqueue(time.time())`` calls, one every ``spacing`` seconds. The
task returns ``time.time()`` from the top of its body, so on every arm
(Celery included) latency = task start - the moment just before the enqueue
call, on the same clock. The database arms also record
``started_at - enqueued_at`` from their rows (``db_p50``), for reference.

Defaults: dbtasks polls every 50-250 ms with backoff and, on Postgres, is
woken by LISTEN/NOTIFY; django-tasks-db's db_worker polls every second;
Celery's worker (2 prefork processes) blocks on Redis.
"""

from __future__ import annotations

import time
from typing import Any

from bench.harness import CELERY
from bench.harness import DBTASKS
from bench.harness import TASKSDB
from bench.harness import Arm
from bench.harness import Metric
from bench.harness import percentile
from bench.orchestrator import Bench
from bench.queues import queue_for
from bench.queues import running_workers
from bench.workers import wait_until

NAME = "pickup"
TITLE = "3. Pickup latency, enqueue → task start (idle worker, default settings)"
METRICS = (
    Metric("p50", "p50", "ms", higher_is_better=False, digits=1),
    Metric("p95", "p95", "ms", higher_is_better=False, digits=1),
    Metric("max", "max", "ms", higher_is_better=False, digits=1),
)


def params(quick: bool) -> dict[str, Any]:
    return {"count": 10 if quick else 50, "spacing": 0.3, "settle": 2.0, "celery_processes": 2}


def run(bench: Bench) -> None:
    arms = bench.arms_for((DBTASKS, TASKSDB, CELERY))
    bench.interleave(NAME, arms, params(bench.quick), timeout=600)


def measure(arm: Arm, phase: str, params: dict[str, Any]) -> dict[str, Any]:
    queue = queue_for(arm)
    queue.reset()
    processes = params["celery_processes"] if arm.system == CELERY else 1
    with running_workers(queue, processes) as workers:
        time.sleep(params["settle"])
        sent: list[tuple[float, Any]] = []
        start = time.monotonic()
        for index in range(params["count"]):
            now = time.time()
            sent.append((now, queue.enqueue("stamp", now)))
            time.sleep(max(0.0, start + (index + 1) * params["spacing"] - time.monotonic()))
        wait_until(
            lambda: queue.finished_count() >= len(sent),
            timeout=60,
            watch=workers,
            what="the stamped tasks",
        )
        outcomes = [(at, queue.outcome(handle)) for at, handle in sent]
    queue.reset()
    latencies = [(outcome["return_value"] - at) * 1000 for at, outcome in outcomes]
    result = {
        "p50": percentile(latencies, 0.5),
        "p95": percentile(latencies, 0.95),
        "max": max(latencies),
        "samples_ms": [round(value, 2) for value in latencies],
    }
    db_side = [
        (outcome["started_at"] - outcome["enqueued_at"]) * 1000
        for _, outcome in outcomes
        if outcome["started_at"] is not None and outcome["enqueued_at"] is not None
    ]
    if db_side:
        result["db_p50"] = percentile(db_side, 0.5)
    return result
