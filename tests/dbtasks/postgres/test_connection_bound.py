"""Many workers against a Postgres with few connections: all tasks run, within the bound.

A private cluster with ``max_connections`` 20 (17 for the workers' role, 3
kept for superusers: this test's own sessions) serves 4 workers of 3 threads.
At ``--threads`` + 3 connections each, they would want 24: the server
refuses some. Task threads that cannot connect give their row back for a
worker that can, and hold their worker's claims back; nothing may stay
RUNNING, nothing may run twice, and no worker may ever hold more than its
bound (counted in ``pg_stat_activity`` by each worker's ``PGAPPNAME``).
"""

from __future__ import annotations

import json
import sys
import threading
from collections import Counter
from pathlib import Path

import pytest

from dbtasks.models import DBTaskResult
from dbtasks.models import DBWorker
from tests.dbtasks.postgres.private import Server
from tests.dbtasks.postgres.private import app_env
from tests.dbtasks.postgres.private import private_cluster
from tests.live import Service
from tests.live import python
from tests.live import wait_until
from tests.testapp.models import TaskRun

pytestmark = pytest.mark.process

WORKERS = 4
THREADS = 3
# The README's guarantees: a task connection per busy thread, plus the main
# loop's, the heartbeat process's and LISTEN's.
BOUND = THREADS + 3
IDLE_BOUND = 3
TASKS = 120
RESULTS = DBTaskResult._meta.db_table
RUNS = TaskRun._meta.db_table
WORKER_ROWS = DBWorker._meta.db_table

ENQUEUE = f"""
import django
django.setup()
from tests import tasks
for n in range({TASKS}):
    tasks.record_run.enqueue(f"task-{{n}}", 0.05)
"""


class Sampler:
    """Counts each worker's sessions in pg_stat_activity every 20 ms, in a thread."""

    def __init__(self, cluster: Server) -> None:
        self.cluster = cluster
        self.most: Counter[str] = Counter()
        self.samples = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, name="sampler", daemon=True)
        self.thread.start()

    def counts(self) -> Counter[str]:
        # Not a backend whose client has closed it: it shows idle with no
        # wait event while it exits (a thread that gave its connection back
        # may already have opened the next one; on a loaded machine the old
        # one can take longer to go than a sample).
        rows = self.cluster.query(
            "SELECT application_name, count(*) FROM pg_stat_activity "
            "WHERE usename = 'worker' "
            "AND (state IS DISTINCT FROM 'idle' OR wait_event IS NOT NULL) "
            "GROUP BY application_name"
        )
        return Counter(dict(rows))

    def run(self) -> None:
        while not self.stop.wait(0.02):
            for name, count in self.counts().items():
                self.most[name] = max(self.most[name], count)
            self.samples += 1


def start_workers(cluster: Server, logs: Path) -> list[Service]:
    workers = []
    for n in range(WORKERS):
        env = app_env(
            cluster.url(),
            PGAPPNAME=f"w{n}",
            LOG_LEVEL="INFO",
            TEST_TASK_OPTIONS=json.dumps({"max_attempts": 20}),
        )
        argv = [sys.executable, "manage.py", "dbtasks_worker", "--threads", str(THREADS)]
        workers.append(Service(f"w{n}", [*argv, "--id", f"w{n}"], env, logs / f"w{n}.log").start())
    return workers


def test_many_workers_run_everything_within_the_connection_bound(tmp_path):
    with private_cluster(max_connections=20) as cluster:
        workers = start_workers(cluster, tmp_path)
        sampler = None
        try:
            wait_until(
                lambda: cluster.query(f"SELECT count(*) FROM {WORKER_ROWS}")[0][0] == WORKERS,
                timeout=60,
                what="the workers to register",
            )
            sampler = Sampler(cluster)
            enqueued = python("-c", ENQUEUE, env=app_env(cluster.url("postgres")))
            assert enqueued.returncode == 0, enqueued.stderr

            def statuses() -> dict[str, int]:
                rows = cluster.query(f"SELECT status, count(*) FROM {RESULTS} GROUP BY status")
                return dict(rows)

            wait_until(
                lambda: statuses() == {"SUCCESSFUL": TASKS},
                timeout=120,
                what="every task to succeed",
                details=lambda: str(statuses()),
            )
            # Idle, each worker gives its task threads' connections back.
            wait_until(
                lambda: max(sampler.counts().values()) <= IDLE_BOUND,
                timeout=30,
                what="idle workers to hold no task connections",
                details=lambda: str(sampler.counts()),
            )
            runs = Counter(key for (key,) in cluster.query(f"SELECT key FROM {RUNS}"))
            attempts = dict(
                cluster.query(f"SELECT return_value #>> '{{}}', attempt_count FROM {RESULTS}")
            )
        finally:
            if sampler is not None:
                sampler.stop.set()
                sampler.thread.join(timeout=5)
            for worker in workers:
                worker.kill()
            logs = "".join(worker.describe(tail=4000) for worker in workers)
            print(logs)  # noqa: T201

    assert all(worker.returncode is not None for worker in workers)
    assert set(runs) == set(attempts)
    # Each ran once; more only for an attempt that failed (none should).
    assert {key: n for key, n in runs.items() if n > attempts[key]} == {}
    assert sum(runs.values()) == TASKS, Counter(attempts.values())
    assert sampler.samples > 10
    assert set(sampler.most) == {f"w{n}" for n in range(WORKERS)}
    assert max(sampler.most.values()) <= BOUND, sampler.most
    # The server did refuse connections: the test tested something.
    assert "remaining connection slots are reserved" in logs or "too many clients" in logs
    print(  # noqa: T201 - the figures docs/reliability.md quotes
        f"\nconnection bound: {WORKERS} workers x {THREADS} threads, max_connections 20: "
        f"{TASKS} tasks SUCCESSFUL, most connections per worker {dict(sampler.most)} "
        f"(bound {BOUND}), hand-backs {logs.count('handing it back')}"
    )
