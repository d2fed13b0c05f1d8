"""Figure 7: worker resident memory after 1,000 and after 100,000 tasks.

One worker at its defaults (Celery: the main process plus its 2 prefork
children) runs no-op tasks fed in committed batches of ``chunk`` (bulk
inserts for the database backends, one producer for Celery), never more
than two batches ahead; on Postgres each batch is followed by the VACUUM
ANALYZE autovacuum would run (see ``vacuum``). At each checkpoint the feeding stops, the worker
drains the queue and idles for a second, and its VmRSS is read from
/proc/<pid>/status. Growth = RSS at the last checkpoint / RSS at the first.

100,000 tasks take minutes per arm, so this figure runs one round, with
the arms side by side (RSS does not depend on speed), by default on the
dbtasks arms only; ``--memory-arms all`` adds the others.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from bench.harness import CELERY
from bench.harness import DBTASKS
from bench.harness import TASKSDB
from bench.harness import Arm
from bench.harness import Metric
from bench.orchestrator import Bench
from bench.queues import DjangoQueue
from bench.queues import Queue
from bench.queues import queue_for
from bench.queues import running_workers
from bench.workers import wait_until

NAME = "memory"
TITLE = "7. Worker resident memory (VmRSS)"
METRICS = (
    Metric("rss_first", "after 1,000 tasks", "MiB", higher_is_better=False, digits=1),
    Metric("rss_last", "after 100,000 tasks", "MiB", higher_is_better=False, digits=1),
    Metric("growth", "growth", "+%", higher_is_better=False, digits=1, ratio=False),
)
DEFAULT_ARMS = ("dbtasks",)


def params(quick: bool) -> dict[str, Any]:
    if quick:
        return {"checkpoints": [200, 2_000], "chunk": 1_000}
    return {"checkpoints": [1_000, 10_000, 50_000, 100_000], "chunk": 10_000}


def run(bench: Bench) -> None:
    wanted = getattr(bench, "memory_arms", None) or DEFAULT_ARMS
    arms = [
        arm
        for arm in bench.arms_for((DBTASKS, TASKSDB, CELERY))
        if "all" in wanted or any(part in arm.name for part in wanted)
    ]
    settings = params(bench.quick)
    bench.figure_results(NAME)["params"] = {**settings, "arms": [arm.name for arm in arms]}
    # Side by side: RSS does not depend on speed, and a worker waiting on
    # Postgres round trips leaves CPU for the others.
    with ThreadPoolExecutor(max_workers=max(len(arms), 1)) as pool:
        for arm in arms:
            pool.submit(bench.measure_once, NAME, arm, settings, 1, timeout=7200)


def measure(arm: Arm, phase: str, params: dict[str, Any]) -> dict[str, Any]:
    queue = queue_for(arm)
    queue.reset()
    chunk = params["chunk"]
    samples: list[dict[str, Any]] = []
    fed = 0
    started = time.monotonic()
    with running_workers(queue, 2 if arm.system == CELERY else 1) as workers:
        for checkpoint in params["checkpoints"]:
            while fed < checkpoint:
                if fed - queue.finished_count() > chunk:
                    for worker in workers:
                        worker.check_alive()
                    time.sleep(0.5)
                    continue
                batch = min(chunk, checkpoint - fed)
                queue.feed(batch)
                fed += batch
                vacuum(queue)
            wait_until(
                lambda checkpoint=checkpoint: queue.finished_count() >= checkpoint,
                timeout=3600,
                interval=0.5,
                watch=workers,
                what=f"{checkpoint:,} tasks",
            )
            time.sleep(1.0)
            samples.append(
                {
                    "tasks": checkpoint,
                    "rss_kib": queue.rss_kib(workers),
                    "seconds": round(time.monotonic() - started, 1),
                }
            )
    queue.reset()
    first, last = samples[0]["rss_kib"], samples[-1]["rss_kib"]
    return {
        "rss_first": first / 1024,
        "rss_last": last / 1024,
        "growth": 100 * (last - first) / first,
        "samples": samples,
    }


def vacuum(queue: Queue) -> None:
    """On Postgres, VACUUM ANALYZE the task table, as autovacuum would.

    A server with autovacuum off (this bench's test server) never refreshes
    the planner's statistics or clears dead index entries while 100,000
    tasks churn through; the claim then degrades (a sort of every READY row
    per claim) and this figure, which is about memory, takes far longer.
    """
    if not isinstance(queue, DjangoQueue) or queue.connection.vendor != "postgresql":
        return
    with queue.connection.cursor() as cursor:
        for table in queue.quoted_tables():
            cursor.execute(f"VACUUM ANALYZE {table}")
