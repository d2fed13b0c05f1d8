"""The ops reads use their indexes on a busy hour: 100,000 tasks finished, 1,000 waiting.

Plans, not timings (those are in bench/ops_reads.py): no read scans the task
or attempt table sequentially, and the admin's paginator estimates instead
of counting a large table.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from bench.ops_reads import insert_busy_hour
from dbtasks.minutes import MINUTE
from dbtasks.minutes import minute_of
from dbtasks.models import DBTaskResult
from dbtasks.ops.failures import latest_cancellations
from dbtasks.ops.failures import latest_failures
from dbtasks.ops.queues import queue_summaries
from dbtasks.ops.recent import RecentActivity
from dbtasks.ops.workers import live_workers
from dbtasks.ops.workers import running_tasks
from dbtasks.worker.summaries import count_minute
from dbtasks.worker.summaries import joined_by_lookups
from tests.ops_data import database_backend

FINISHED = 100_000
TABLES = {"dbtasks_dbtaskresult", "dbtasks_dbtaskattempt"}


@pytest.fixture(scope="module")
def busy_hour_rows(django_db_setup, django_db_blocker):
    """Built once for the module (committed), emptied after it."""
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        insert_busy_hour(cursor, finished=FINISHED, waiting=1_000)
        cursor.execute("ANALYZE dbtasks_dbtaskresult")
        cursor.execute("ANALYZE dbtasks_dbtaskattempt")
    yield
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE dbtasks_dbtaskattempt, dbtasks_dbtaskresult, dbtasks_dbworker CASCADE"
        )


@pytest.fixture
def busy_hour(busy_hour_rows, db):
    """The busy hour, in a test transaction."""


def statements_of(read: Callable[[], Any]) -> list[tuple[str, Any]]:
    """The SQL and parameters ``read()`` sends."""
    sent: list[tuple[str, Any]] = []

    def capture(execute, sql, params, many, context):
        sent.append((sql, params))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(capture):
        read()
    return [(sql, params) for sql, params in sent if sql.lstrip().upper().startswith("SELECT")]


def scans(sql: str, params: Any) -> list[tuple[str, str | None, str | None]]:
    """(node type, index, table) of every scan of the task and attempt tables."""
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
        (top,) = cursor.fetchone()[0]

    def nodes(plan):
        yield plan
        for child in plan.get("Plans", []):
            yield from nodes(child)

    # A bitmap scan names its table on the heap node, its index on the child.
    return [
        (node["Node Type"], node.get("Index Name"), node.get("Relation Name"))
        for node in nodes(top["Plan"])
        if node.get("Relation Name") in TABLES or node["Node Type"] == "Bitmap Index Scan"
    ]


def assert_no_sequential_scan(
    read: Callable[[], Any],
) -> list[tuple[str, str | None, str | None]]:
    found = []
    for sql, params in statements_of(read):
        found += scans(sql, params)
    assert found, "the read touched neither table"
    assert not [scan for scan in found if scan[0] == "Seq Scan"], found
    return found


def test_the_queue_summary_reads_the_unfinished_index(busy_hour):
    backend = database_backend()
    now = timezone.now()

    found = assert_no_sequential_scan(
        lambda: queue_summaries(backend, now=now, recent=RecentActivity(now=now, by_minute={}))
    )

    assert {index for _, index, _ in found} == {"dbtasks_unfinished_idx"}


@pytest.mark.parametrize(
    ("read", "index"),
    [
        (lambda backend: latest_cancellations(backend), "dbtasks_cancelled_idx"),
        (lambda backend: latest_failures(backend), "dbtasks_attempt_failed_idx"),
        (lambda backend: running_tasks(backend, now=timezone.now()), "dbtasks_running_idx"),
        (lambda backend: live_workers(backend, now=timezone.now()), "dbtasks_running_idx"),
    ],
)
def test_the_lists_read_their_index(busy_hour, read, index):
    found = assert_no_sequential_scan(lambda: read(database_backend()))

    assert index in {name for _, name, _ in found}, found


def test_counting_a_minute_looks_up_each_attempts_task_by_its_key(busy_hour):
    backend = database_backend()
    minute = minute_of(timezone.now()) - 30 * MINUTE

    with joined_by_lookups("default"):
        found = []
        for sql, params in statements_of(lambda: count_minute(backend, minute)):
            found += scans(sql, params)

    # The task table is never read whole (nor hashed) for the join. (The
    # attempt side is the minute's range of dbtasks_attempt_stopped_idx at a
    # million rows; on this small table the planner may as well read it all.)
    assert ("Index Scan", "dbtasks_dbtaskresult_pkey", "dbtasks_dbtaskresult") in found
    assert ("Index Scan", "dbtasks_cancelled_idx", "dbtasks_dbtaskresult") in found
    assert not [
        scan for scan in found if scan[0] == "Seq Scan" and scan[2] == "dbtasks_dbtaskresult"
    ], found
    counted = count_minute(backend, minute)
    assert sum(queue.attempts for queue in counted.values()) == pytest.approx(
        FINISHED / 60, rel=0.05
    )


def test_the_admin_list_estimates_its_count_instead_of_counting(admin_client, busy_hour):
    changelist = reverse("admin:dbtasks_dbtaskresult_changelist")

    sent = statements_of(lambda: admin_client.get(changelist))
    response = admin_client.get(changelist)

    assert response.context["cl"].paginator.estimated
    assert response.context["cl"].result_count > 50_000
    assert "About" in response.content.decode()
    counts = [sql for sql, _ in sent if "COUNT(" in sql.upper() and "dbtasks_" in sql]
    assert counts == []


@pytest.mark.parametrize(
    "query",
    [
        {},
        {"state": "ready"},
        {"state": "scheduled"},
        {"state": "blocked"},
        {"state": "running"},
        {"state": "successful"},
        {"state": "failed"},
        {"state": "cancelled"},
        {"queue_name": "low_priority"},
        {"backend_name": "default"},
    ],
)
def test_every_admin_filter_reads_an_index(admin_client, busy_hour, query):
    changelist = reverse("admin:dbtasks_dbtaskresult_changelist")

    def read():
        response = admin_client.get(changelist, query)
        assert response.status_code == 200

    for sql, params in statements_of(read):
        if "dbtasks_dbtaskresult" in sql and not sql.upper().startswith("SELECT COUNT"):
            found = scans(sql, params)
            assert not [scan for scan in found if scan[0] == "Seq Scan"], (query, found)


def test_the_plan_check_sees_sequential_scans(busy_hour):
    # The check itself can fail: a search by substring has no index to use.
    rows = DBTaskResult.objects.filter(task_path__contains="noop").order_by("task_path")

    with pytest.raises(AssertionError):
        assert_no_sequential_scan(lambda: list(rows[:1]))


def test_the_controls_count_waiting_tasks_through_the_limits_indexes(busy_hour):
    from dbtasks.models import DBRateBucket
    from dbtasks.models import DBSemaphore
    from dbtasks.ops.controls import controls

    now = timezone.now()
    DBSemaphore.objects.create(key="task:app.limited", limit=1, in_use=1)
    DBRateBucket.objects.create(
        queue_name="default", key="task:app.throttled", limit=10, period=MINUTE, next_at=now
    )
    fields: dict[str, Any] = {"backend_name": "default", "queue_name": "default"}
    fields |= {"task_path": "app.t", "enqueued_at": now, "available_after": now}
    DBTaskResult.objects.bulk_create(
        [
            DBTaskResult(**fields, status=status, **key)
            for status, key in [("BLOCKED", {"concurrency_key": "task:app.limited"})] * 3
            + [("READY", {"rate_key": "task:app.throttled"})] * 3
        ]
    )
    backend = database_backend()

    found = assert_no_sequential_scan(lambda: controls(backend, now=now))

    assert {index for _, index, _ in found} == {"dbtasks_concurrency_idx", "dbtasks_rate_idx"}
    shown = controls(backend, now=now)
    assert [row.blocked for row in shown.concurrency] == [3]
    assert [row.waiting for row in shown.rates] == [3]
