"""The claim and purge queries use their indexes with 100,000 finished rows in the table.

Beside the finished rows, 20,000 SCHEDULED ones (deliveries for later) make
the choice of index certain: the claim's partial index holds only the 20
READY rows, dbtasks_unfinished_idx holds those 20,000 too. With only a few
unfinished rows either index is as cheap, and the planner may pick either.
"""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from django.db import connection
from django.db import transaction
from django.utils import timezone

from dbtasks.models import DBTaskResult
from dbtasks.sql.claim import claim
from dbtasks.worker import Worker
from dbtasks.worker import WorkerOptions
from tests.dbtasks.helpers import default_backend

FINISHED_ROWS = 100_000
SCHEDULED_ROWS = 20_000


@pytest.fixture
def big_table(db):
    """100,000 finished rows (a month of history), 20,000 SCHEDULED, 20 READY, 5 RUNNING."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO dbtasks_dbtaskresult (
                task_path, backend_name, queue_name, priority, takes_context, arguments,
                status, enqueued_at, started_at, finished_at, last_attempted_at,
                available_after, attempt_count, worker_id
            )
            SELECT
                'tests.tasks.noop', 'default', 'default', 0, false, '{"args": [], "kwargs": {}}',
                CASE WHEN mod(n, 10) = 0 THEN 'FAILED' ELSE 'SUCCESSFUL' END,
                at, at, at, at, at, 1, ''
            FROM (
                SELECT n, now() - n * interval '26 seconds' AS at
                FROM generate_series(1, %s) AS n
            ) AS history
            """,
            [FINISHED_ROWS],
        )
        cursor.execute(
            """
            INSERT INTO dbtasks_dbtaskresult (
                task_path, backend_name, queue_name, priority, claim_priority, takes_context,
                arguments, status, enqueued_at, available_after, attempt_count, worker_id
            )
            SELECT
                'tests.tasks.noop', 'default', 'default', mod(n, 3), mod(n, 3), false,
                '{"args": [], "kwargs": {}}',
                CASE WHEN n <= 5 THEN 'RUNNING' ELSE 'READY' END,
                now(), now(), CASE WHEN n <= 5 THEN 1 ELSE 0 END,
                CASE WHEN n <= 5 THEN 'w:1:aa' ELSE '' END
            FROM generate_series(1, 25) AS n
            """
        )
        cursor.execute(
            """
            INSERT INTO dbtasks_dbtaskresult (
                task_path, backend_name, queue_name, priority, takes_context, arguments,
                status, enqueued_at, available_after, attempt_count, worker_id
            )
            SELECT
                'tests.tasks.noop', 'default', 'default', 0, false, '{"args": [], "kwargs": {}}',
                'SCHEDULED', now(), now() + n * interval '1 minute', 0, ''
            FROM generate_series(1, %s) AS n
            """,
            [SCHEDULED_ROWS],
        )
        cursor.execute("ANALYZE dbtasks_dbtaskresult")
    assert DBTaskResult.objects.count() == FINISHED_ROWS + SCHEDULED_ROWS + 25


def plan_nodes(plan):
    """Every node of an EXPLAIN (FORMAT JSON) plan, depth first."""
    yield plan
    for child in plan.get("Plans", []):
        yield from plan_nodes(child)


def scans_of(explain_json):
    """(node type, index name) of every scan of dbtasks_dbtaskresult."""
    (top,) = json.loads(explain_json) if isinstance(explain_json, str) else explain_json
    return [
        (node["Node Type"], node.get("Index Name"))
        for node in plan_nodes(top["Plan"])
        if node.get("Relation Name") == "dbtasks_dbtaskresult"
    ]


def indexes_of(explain_json):
    """The name of every index the plan reads, bitmap index scans included."""
    (top,) = json.loads(explain_json) if isinstance(explain_json, str) else explain_json
    return {node["Index Name"] for node in plan_nodes(top["Plan"]) if "Index Name" in node}


def captured(call):
    """The statements ``call()`` sends, captured as it runs (then rolled back)."""
    sent = []

    def capture(execute, sql, params, many, context):
        sent.append((sql, params))
        return execute(sql, params, many, context)

    with transaction.atomic(), connection.execute_wrapper(capture):
        call()
        transaction.set_rollback(True)
    return sent


def claim_statement(alone=False):
    """The SQL and parameters claim() sends (``alone``: for a row to run alone)."""

    def claim_rows():
        rows = claim(
            db="default",
            backend_name="default",
            queues=["default", "low_priority"],
            worker_id="w",
            limit=4,
            now=timezone.now(),
            alone=alone,
        )
        assert len(rows) == (0 if alone else 4)

    (statement,) = captured(claim_rows)
    return statement


def explain(sql, params=()):
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
        return cursor.fetchone()[0]


def test_the_claim_uses_the_ready_index(big_table):
    # Tasks to run alone too: a worker looks for them every heartbeat
    # interval, and claims one when idle. (One test for the three: each
    # big_table leaves 120,000 dead rows behind, which sway later plans.)
    worker = Worker(default_backend(), WorkerOptions())
    (look,) = captured(lambda: worker.alone.refresh(timezone.now()))

    for sql, params in [claim_statement(), look, claim_statement(alone=True)]:
        plan = explain(sql, params)

        scans = scans_of(plan)
        assert ("Seq Scan", None) not in scans, scans
        assert "dbtasks_ready_idx" in indexes_of(plan), plan


def test_the_claim_uses_the_ready_index_with_a_generic_plan(big_table):
    # With server-side binding (OPTIONS "server_side_binding": True) Postgres
    # may plan a prepared claim once, for any parameter values: it can only
    # use the partial index if status = 'READY' is in the SQL itself.
    sql, params = claim_statement()
    numbered = iter(range(1, len(params) + 1))
    prepared = re.sub(r"%s", lambda _: f"${next(numbered)}", sql)
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        cursor.execute(f"PREPARE dbtasks_claim AS {prepared}")
        try:
            placeholders = ", ".join(["%s"] * len(params))
            plan = explain(f"EXECUTE dbtasks_claim({placeholders})", params)
        finally:
            cursor.execute("DEALLOCATE dbtasks_claim")

    scans = scans_of(plan)
    assert ("Seq Scan", None) not in scans, scans
    assert "dbtasks_ready_idx" in indexes_of(plan), plan


@pytest.mark.parametrize(
    ("which", "index"),
    [("finished_before", "dbtasks_finished_idx"), ("unfinished_before", "dbtasks_unfinished_idx")],
)
def test_the_purge_queries_use_their_index(big_table, which, index):
    cutoff = timezone.now() - timedelta(days=29)
    # The batch delete_in_batches() selects.
    rows = getattr(DBTaskResult.objects.filter(backend_name="default"), which)(cutoff)
    batch = rows.order_by().values_list("pk", flat=True)[:1000]

    scans = scans_of(batch.explain(format="json"))

    assert scans == [("Index Scan", index)] or scans == [("Bitmap Heap Scan", None)], scans
    assert ("Seq Scan", None) not in scans
