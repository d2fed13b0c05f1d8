"""The rate-limited claim reads one index range per key; the ordinary claim never sees them.

Both databases: the statements' plans (SQLite's EXPLAIN QUERY PLAN, Postgres'
EXPLAIN ANALYZE) on a table where one throttled key has a backlog in the
same queue as ordinary work.
"""

from __future__ import annotations

import json
import re

import pytest
from django.db import connection
from django.db import transaction
from django.utils import timezone

from dbtasks.models import DBTaskResult
from dbtasks.sql import rate_limits
from dbtasks.sql.claim import claim
from tests import tasks

BACKLOG = 500
KEY = "task:tests.tasks.echo"
INDEX = re.compile(r"USING (?:COVERING )?INDEX (\w+)")


@pytest.fixture
def throttled_backlog(db, settings):
    tasks.noop.enqueue()  # ordinary work in the same queue
    now = timezone.now()
    template = {
        "task_path": "tests.tasks.echo",
        "backend_name": "default",
        "queue_name": "default",
        "arguments": {"args": [], "kwargs": {}},
        "status": "READY",
        "enqueued_at": now,
        "available_after": now,
    }
    DBTaskResult.objects.bulk_create(
        [DBTaskResult(**template, rate_key=KEY, priority=10) for _ in range(BACKLOG)]
        + [DBTaskResult(**template, rate_key=f"{KEY}:{n}") for n in range(3)]
    )
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE dbtasks_dbtaskresult")


def statements(call):
    """The SQL statements ``call()`` sends, in a transaction rolled back."""
    sent = []

    def capture(execute, sql, params, many, context):
        sent.append((sql, params))
        return execute(sql, params, many, context)

    with transaction.atomic(), connection.execute_wrapper(capture):
        result = call()
        transaction.set_rollback(True)
    return sent, result


def index_reads(sql, params):
    """{index name: rows read} of the statement's reads of the results table."""
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute(f"EXPLAIN QUERY PLAN {sql}", params)
            steps = [row[3] for row in cursor.fetchall() if "dbtasks_dbtaskresult" in row[3]]
            transaction.set_rollback(True)
            assert not [step for step in steps if step.startswith("SCAN")], steps
            return {match.group(1): None for step in steps if (match := INDEX.search(step))}
        # A table of a few hundred rows, with dead ones left by earlier tests,
        # can make a scan of everything the planner's cheapest choice; what is
        # tested here is that an index serves the statement reading only the
        # rows it returns (a million-row table is bench/'s), so the index
        # plan is asked for. A missing index still shows: as a scan, or as
        # rows an index read and the filter threw away.
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_bitmapscan = off")
        cursor.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}", params)
        plan = cursor.fetchone()[0]
        transaction.set_rollback(True)
    (top,) = json.loads(plan) if isinstance(plan, str) else plan
    reads = {}
    pending = [top["Plan"]]
    while pending:
        node = pending.pop()
        pending += node.get("Plans", [])
        if node.get("Relation Name") != "dbtasks_dbtaskresult":
            continue
        assert node["Node Type"] != "Seq Scan", node
        assert node.get("Rows Removed by Filter", 0) == 0, node
        if "Index Name" in node:
            reads[node["Index Name"]] = node["Actual Rows"]
    return reads


def test_the_ordinary_claim_skips_the_throttled_backlog(throttled_backlog):
    sent, rows = statements(
        lambda: claim(
            db="default",
            backend_name="default",
            queues=["default"],
            worker_id="w",
            limit=2,
            now=timezone.now(),
        )
    )

    assert [row.task_path for row in rows] == ["tests.tasks.noop"]  # not the priority-10 rows
    ((sql, params),) = sent
    reads = index_reads(sql, params)
    assert "dbtasks_ready_idx" in reads, reads
    if connection.vendor == "postgresql":
        assert reads["dbtasks_ready_idx"] == 1, reads


def test_a_keys_claim_is_one_search_of_the_rate_index(throttled_backlog):
    sql, params = rate_limits._best_rows("default", "default", ("default", KEY), timezone.now(), 2)

    reads = index_reads(sql, params)

    assert set(reads) == {"dbtasks_rate_idx"}, reads
    if connection.vendor == "postgresql":
        assert reads["dbtasks_rate_idx"] == 2, reads


def test_finding_the_waiting_keys_costs_a_search_per_key(throttled_backlog):
    sent, found = statements(
        lambda: rate_limits.waiting_keys("default", "default", ["default"], cap=100)
    )

    assert set(found) == {("default", KEY), *{("default", f"{KEY}:{n}") for n in range(3)}}
    assert len(sent) == len(found) + 1  # the last finds none
    for sql, params in sent:
        reads = index_reads(sql, params)
        assert set(reads) == {"dbtasks_rate_idx"}, reads
        if connection.vendor == "postgresql":
            assert reads["dbtasks_rate_idx"] <= 1, reads
