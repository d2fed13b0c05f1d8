"""How many SQL statements the hot path costs: one to claim, three per first attempt."""

from __future__ import annotations

from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from dbtasks.backend import DatabaseBackend
from dbtasks.compat import TaskResultStatus
from dbtasks.sql.claim import claim
from dbtasks.worker.execution import execute
from tests import tasks
from tests.dbtasks.helpers import default_backend

# The statements Django logs (BEGIN and COMMIT included) for claim + start +
# finish of a first attempt. Postgres: the claim's UPDATE ... RETURNING, then
# one WITH (UPDATE ...) INSERT that closes the attempt. SQLite cannot put an
# UPDATE in a CTE: BEGIN IMMEDIATE, UPDATE, INSERT, COMMIT close it.
STATEMENTS_PER_TASK = {"postgresql": 2, "sqlite": 5}


def claim_one():
    return claim(
        db="default",
        backend_name="default",
        queues=["default"],
        worker_id="w",
        limit=1,
        now=timezone.now(),
    )


def test_the_claim_is_one_statement(db, django_assert_num_queries):
    tasks.noop.enqueue()

    with django_assert_num_queries(1) as captured:
        rows = claim_one()

    assert len(rows) == 1
    assert captured.captured_queries[0]["sql"].lstrip().startswith("UPDATE")


def test_an_empty_claim_is_one_statement(db, django_assert_num_queries):
    with django_assert_num_queries(1):
        assert claim_one() == []


def test_claim_start_and_finish_of_a_first_attempt(transactional_db):
    result = tasks.noop.enqueue()
    policy = default_backend().config.policy("default")

    with CaptureQueriesContext(connection) as captured:
        (row,) = claim_one()
        execute(row, worker_id="w", policy=policy, sender=DatabaseBackend)

    result.refresh()
    assert result.status == TaskResultStatus.SUCCESSFUL
    statements = [query["sql"].split(None, 1)[0] for query in captured.captured_queries]
    assert len(statements) == STATEMENTS_PER_TASK[connection.vendor], statements
    if connection.vendor == "postgresql":
        assert statements == ["UPDATE", "WITH"]
        assert len(statements) <= 3  # the budget: three statements per task at most


def test_a_retry_reads_the_history_once_more(transactional_db):
    # The second attempt needs the first one's error for TaskResult.errors.
    result = tasks.fails_until_attempt.enqueue(succeed_on=2)
    policy = default_backend().config.policy("default")
    (row,) = claim_one()
    execute(row, worker_id="w", policy=policy, sender=DatabaseBackend)

    with CaptureQueriesContext(connection) as captured:
        (row,) = claim_one()
        execute(row, worker_id="w", policy=policy, sender=DatabaseBackend)

    result.refresh()
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert len(captured) == STATEMENTS_PER_TASK[connection.vendor] + 1
