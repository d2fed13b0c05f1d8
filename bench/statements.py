"""Figure 4: SQL statements per task (claim + start + finish), worker side.

The worker command runs in this process (``dbtasks_worker --oneshot``;
``db_worker --batch``) once with 1 task and once with ``tasks`` tasks
pending. Every database connection it opens, in any thread, logs its
statements in Django's query log (what ``CaptureQueriesContext`` reads), and
Postgres connection health checks (``SELECT 1`` run by Django outside the
log when ``CONN_HEALTH_CHECKS`` is on) are counted too. Per task = the
difference between the two runs / (tasks - 1): start-up, shut-down and the
final empty poll cancel out.

- data: SELECT/INSERT/UPDATE/DELETE;
- transaction: BEGIN, COMMIT, savepoints (each a round trip on Postgres);
- pings: health-check ``SELECT 1``;
- total: all three, what the server executes per task.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from bench.harness import DBTASKS
from bench.harness import TASKSDB
from bench.harness import Arm
from bench.harness import Metric
from bench.orchestrator import Bench
from bench.queues import DjangoQueue

NAME = "statements"
TITLE = "4. Statements per task, worker side (claim + start + finish)"
METRICS = (
    Metric("total", "total", "", higher_is_better=False, digits=1),
    Metric("data", "data statements", "", higher_is_better=False, digits=1),
    Metric("transaction", "BEGIN/COMMIT", "", higher_is_better=False, digits=1),
    Metric("pings", "health-check pings", "", higher_is_better=False, digits=1),
)
TRANSACTION = re.compile(r"^\s*(BEGIN|COMMIT|ROLLBACK|SAVEPOINT|RELEASE)\b", re.IGNORECASE)


def params(quick: bool) -> dict[str, Any]:
    return {"tasks": 11 if quick else 21}


def run(bench: Bench) -> None:
    arms = bench.arms_for((DBTASKS, TASKSDB))
    bench.interleave(NAME, arms, params(bench.quick), timeout=300)


def normalise(sql: str) -> str:
    sql = re.sub(r"'(?:[^']|'')*'", "?", sql)
    sql = re.sub(r"\b\d+(\.\d+)?\b", "?", sql)
    return re.sub(r"\s+", " ", sql).strip()[:140]


class QueryRecorder:
    """Django's query log on every connection opened from now on, in every thread."""

    def __init__(self) -> None:
        from django.db import connections
        from django.db.backends.signals import connection_created

        self.connections: list[Any] = []
        self.pings = 0
        connection_created.connect(self.created, weak=False)
        wrapper = type(connections["default"])
        original = wrapper.is_usable
        recorder = self

        def counted(connection: Any) -> bool:
            if connection.vendor == "postgresql":
                recorder.pings += 1
            return original(connection)

        # Count pings by wrapping the method on the class (every connection of the run).
        wrapper.is_usable = counted  # type: ignore[method-assign, assignment]

    def created(self, sender: object, connection: Any, **kwargs: Any) -> None:
        connection.force_debug_cursor = True
        connection.queries_log.clear()
        self.connections.append(connection)

    def start(self) -> None:
        from django.db import connections

        connections.close_all()
        self.connections.clear()
        self.pings = 0

    def statements(self) -> list[str]:
        return [query["sql"] for connection in self.connections for query in connection.queries_log]


def run_worker(arm: Arm) -> None:
    from django.core.management import call_command

    if arm.system == DBTASKS:
        call_command("dbtasks_worker", "--oneshot", verbosity=0)
    else:
        call_command("db_worker", "--batch", "--no-startup-delay", "--no-reload", verbosity=0)


def count(arm: Arm, queue: DjangoQueue, recorder: QueryRecorder, tasks: int) -> dict[str, Any]:
    queue.reset()
    for _ in range(tasks):
        queue.enqueue("noop")
    recorder.start()
    run_worker(arm)
    statements = recorder.statements()
    pings = recorder.pings
    if queue.finished_count() != tasks:
        raise RuntimeError(f"The worker finished {queue.finished_count()} of {tasks} tasks.")
    transaction = [sql for sql in statements if TRANSACTION.match(sql)]
    return {
        "data": len(statements) - len(transaction),
        "transaction": len(transaction),
        "pings": pings,
        "sql": Counter(normalise(sql) for sql in statements),
    }


def measure(arm: Arm, phase: str, params: dict[str, Any]) -> dict[str, Any]:
    queue = DjangoQueue(arm)
    recorder = QueryRecorder()
    tasks = params["tasks"]
    count(arm, queue, recorder, 1)  # warm-up: imports, first connection
    one = count(arm, queue, recorder, 1)
    many = count(arm, queue, recorder, tasks)
    queue.reset()
    per_task = {
        key: (many[key] - one[key]) / (tasks - 1) for key in ("data", "transaction", "pings")
    }
    per_task["total"] = sum(per_task.values())
    sql = {
        text: round((many["sql"][text] - one["sql"].get(text, 0)) / (tasks - 1), 2)
        for text in many["sql"]
        if many["sql"][text] - one["sql"].get(text, 0) > 0
    }
    return {**per_task, "per_task_sql": sql, "vendor": queue.connection.vendor}
