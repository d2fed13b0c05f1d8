"""Figure 1: enqueue throughput, one process, no worker running.

``count`` calls of the public API (``noop.enqueue()``; ``noop.delay()`` on
Celery) in autocommit mode, then ``count`` more inside one
``transaction.atomic()`` (not applicable to Celery: a broker has no
transaction to join). A warm-up of 200 calls comes first and is not timed.
"""

from __future__ import annotations

import time
from typing import Any

from bench.harness import CELERY
from bench.harness import DBTASKS
from bench.harness import TASKSDB
from bench.harness import Arm
from bench.harness import Metric
from bench.orchestrator import Bench
from bench.queues import queue_for

NAME = "enqueue"
TITLE = "1. Enqueue throughput (one process)"
METRICS = (
    Metric("autocommit", "enqueue() calls, each its own transaction", "/s"),
    Metric("atomic", "enqueue() calls inside one atomic()", "/s"),
)
WARM_UP = 200


def params(quick: bool) -> dict[str, Any]:
    return {"count": 500 if quick else 5000}


def run(bench: Bench) -> None:
    arms = bench.arms_for((DBTASKS, TASKSDB, CELERY))
    bench.interleave(NAME, arms, params(bench.quick), timeout=600)


def measure(arm: Arm, phase: str, params: dict[str, Any]) -> dict[str, Any]:
    count = params["count"]
    queue = queue_for(arm)
    queue.reset()
    for _ in range(WARM_UP):
        queue.enqueue("noop")
    queue.reset()

    started = time.perf_counter()
    for _ in range(count):
        queue.enqueue("noop")
    autocommit = count / (time.perf_counter() - started)
    queue.reset()
    result = {"autocommit": autocommit}

    if arm.system != CELERY:
        started = time.perf_counter()
        with queue.atomic():
            for _ in range(count):
                queue.enqueue("noop")
        result["atomic"] = count / (time.perf_counter() - started)
        queue.reset()
    return result
