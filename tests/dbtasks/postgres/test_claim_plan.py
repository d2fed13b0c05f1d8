"""The claim reads only the rows it takes: EXPLAIN ANALYZE on a table full of others.

Beside the few READY rows of the worker's queues, the table holds another
queue's READY backlog, high-priority rows of the worker's own queue
scheduled for next week, running rows and finished history. The claim must
read one short range of ``dbtasks_ready_idx`` per queue and nothing else:
no sequential scan, no row read and thrown away.
"""

from __future__ import annotations

import json

import pytest
from django.db import connection
from django.db import transaction
from django.utils import timezone

from dbtasks.sql.claim import claim

OTHERS = 3_000  # rows of each kind the claim must not read
LIMIT = 4


def insert(cursor, *, count, queue, status, priority, due, attempt_count=0, worker_id=""):
    cursor.execute(
        """
        INSERT INTO dbtasks_dbtaskresult (
            task_path, backend_name, queue_name, priority, claim_priority, takes_context,
            arguments, status, enqueued_at, available_after, attempt_count, worker_id
        )
        SELECT 'tests.tasks.noop', 'default', %s, %s, %s, false, '{"args": [], "kwargs": {}}',
               %s, now(), now() + %s * interval '1 second' + n * interval '1 microsecond',
               %s, %s
        FROM generate_series(1, %s) AS n
        """,
        [queue, priority, priority, status, due, attempt_count, worker_id, count],
    )


@pytest.fixture
def crowded_table(db):
    week = 7 * 24 * 3600
    with connection.cursor() as cursor:
        insert(cursor, count=OTHERS, queue="other", status="READY", priority=50, due=-60)
        insert(cursor, count=OTHERS, queue="default", status="SCHEDULED", priority=100, due=week)
        insert(cursor, count=OTHERS, queue="default", status="SUCCESSFUL", priority=0, due=-3600)
        insert(
            cursor,
            count=OTHERS,
            queue="low_priority",
            status="RUNNING",
            priority=0,
            due=-60,
            attempt_count=1,
            worker_id="w:1:aa",
        )
        insert(cursor, count=10, queue="default", status="READY", priority=0, due=-1)
        insert(cursor, count=10, queue="low_priority", status="READY", priority=5, due=-1)
        cursor.execute("ANALYZE dbtasks_dbtaskresult")


def claim_statement(queues):
    """The SQL and parameters claim() sends (the claim itself is rolled back)."""
    sent = []

    def capture(execute, sql, params, many, context):
        sent.append((sql, params))
        return execute(sql, params, many, context)

    with transaction.atomic(), connection.execute_wrapper(capture):
        rows = claim(
            db="default",
            backend_name="default",
            queues=queues,
            worker_id="w",
            limit=LIMIT,
            now=timezone.now(),
        )
        transaction.set_rollback(True)
    (statement,) = sent
    return statement, rows


def analyzed_plan(sql, params):
    """EXPLAIN ANALYZE's plan of the statement, run in a transaction rolled back."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}", params)
        plan = cursor.fetchone()[0]
        transaction.set_rollback(True)
    (top,) = json.loads(plan) if isinstance(plan, str) else plan
    return top["Plan"]


def nodes(plan):
    yield plan
    for child in plan.get("Plans", []):
        yield from nodes(child)


@pytest.mark.parametrize("queues", [["default"], ["default", "low_priority"]])
def test_the_claim_reads_one_index_range_per_queue_and_nothing_else(crowded_table, queues):
    (sql, params), rows = claim_statement(queues)
    # The best rows across the queues: low_priority's carry priority 5.
    expected_queue = "low_priority" if "low_priority" in queues else "default"
    assert [row.queue_name for row in rows] == [expected_queue] * LIMIT

    plan = analyzed_plan(sql, params)

    scans = [
        node
        for node in nodes(plan)
        if node.get("Relation Name") == "dbtasks_dbtaskresult"
        and node["Node Type"] != "ModifyTable"
    ]
    kinds = {(node["Node Type"], node.get("Index Name")) for node in scans}
    assert kinds <= {
        ("Index Scan", "dbtasks_ready_idx"),
        ("Index Scan", "dbtasks_dbtaskresult_pkey"),
    }, kinds
    ready_scans = [node for node in scans if node.get("Index Name") == "dbtasks_ready_idx"]
    assert len(ready_scans) == 1, ready_scans  # one scan, run once per queue (LATERAL)
    (ready_scan,) = ready_scans
    assert "queue_name" in ready_scan["Index Cond"], ready_scan
    assert ready_scan["Actual Loops"] == len(queues)
    # Never more than the limit per queue, and nothing read then filtered out:
    # the other queue, the scheduled and running rows were never touched.
    assert ready_scan["Actual Rows"] <= LIMIT, ready_scan
    assert ready_scan.get("Rows Removed by Filter", 0) == 0, ready_scan
    for node in scans:
        assert node.get("Rows Removed by Index Recheck", 0) == 0, node
