"""Workers behind PgBouncer in transaction mode: each task once, LISTEN on a direct connection.

Debian's pgbouncer runs in front of this run's Postgres (transaction mode, 4
server connections). The workers' DATABASE_URL is the pooler; their
``OPTIONS['listen_database']`` names a second alias that reaches the server
directly (LISTEN needs one session for good, which a transaction pooler
does not give). Tasks are enqueued through the pooler too. The workers poll
every 30 s, so only the notification can explain a pickup within seconds.
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest
from django.db import connection

from dbtasks.models import SUCCESSFUL
from dbtasks.models import DBTaskResult
from tests.dbtasks.postgres.private import app_env
from tests.dbtasks.postgres.private import pgbouncer
from tests.live import python
from tests.live import wait_until
from tests.testapp.models import TaskRun
from tests.workers import database_url

pytestmark = pytest.mark.process

SLOW_POLLING = ("--delay-min", "30000", "--delay-max", "30000")
TASKS = 60
PICKUPS = 3


def enqueue_through(url: str, prefix: str, count: int) -> list[int]:
    """Enqueue ``count`` tasks in a process whose database is ``url``; return their ids."""
    script = (
        "import django\ndjango.setup()\nfrom tests import tasks\n"
        f"for n in range({count}):\n"
        f"    print(tasks.record_run.enqueue(f'{prefix}-{{n}}').id)\n"
    )
    done = python("-c", script, env=app_env(url))
    assert done.returncode == 0, done.stderr
    return [int(line) for line in done.stdout.split()]


def listening_sessions() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND query = 'LISTEN dbtasks'"
        )
        return cursor.fetchone()[0]


def test_workers_through_pgbouncer_run_each_task_once_and_wake_on_notify(start_worker):
    direct = database_url()
    with pgbouncer(int(connection.settings_dict["PORT"] or 5432)) as pooler:
        pooled = pooler.url(connection.settings_dict["NAME"])
        env = {"DATABASE_URL": pooled, "TEST_LISTEN_DATABASE_URL": direct}
        workers = [
            start_worker(
                "--threads", "2", *SLOW_POLLING, options={"listen_database": "listen"}, env=env
            )
            for _ in range(2)
        ]
        for worker in workers:
            worker.wait_registered()
        # Each worker's LISTEN session stays (through the pooler it would not).
        wait_until(lambda: listening_sessions() == 2, timeout=30, what="two LISTEN sessions")

        ids = enqueue_through(pooled, "batch", TASKS)
        wait_until(
            lambda: DBTaskResult.objects.filter(pk__in=ids, status=SUCCESSFUL).count() == TASKS,
            timeout=60,
            what="every task to succeed",
        )
        pickups = []
        for n in range(PICKUPS):
            # Enqueued a second or more after the last task ended (the process
            # starts first): the workers are waiting out their 30 s poll.
            (pk,) = enqueue_through(pooled, f"pickup{n}", 1)
            wait_until(
                lambda: DBTaskResult.objects.get(pk=pk).status == SUCCESSFUL,  # noqa: B023
                timeout=20,
                what="the task to be picked up",
            )
            row = DBTaskResult.objects.get(pk=pk)
            assert row.last_attempted_at is not None
            pickups.append(row.last_attempted_at - row.enqueued_at)
        logs = "".join(worker.output() for worker in workers)

    rows = DBTaskResult.objects.filter(pk__in=ids)
    assert Counter(rows.values_list("attempt_count", flat=True)) == {1: TASKS}
    runs = Counter(TaskRun.objects.values_list("key", flat=True))
    assert runs == {
        **{f"batch-{n}": 1 for n in range(TASKS)},
        **{f"pickup{n}-0": 1 for n in range(PICKUPS)},
    }
    assert max(pickups) < timedelta(seconds=5), pickups
    assert "Traceback" not in logs, logs[-5000:]
    print(f"\npgbouncer pickups: {[round(p.total_seconds(), 3) for p in pickups]} s")  # noqa: T201
