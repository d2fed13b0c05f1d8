"""The bench's helpers that write dbtasks' tables directly keep up with them.

A column added to the task table, or a table that refers to it, broke them
unnoticed until the next ``make bench`` (``bench/claim_latency.py``'s fill,
``bench/queues.py``'s reset).
"""

from __future__ import annotations

import sys

import django
import pytest

from bench.claim_latency import fill
from bench.harness import DBTASKS
from bench.harness import Arm
from bench.queues import DjangoQueue
from dbtasks import workflows
from dbtasks.models import DBTaskResult
from dbtasks.workflows.models import DBWorkflow
from tests import tasks

pytestmark = [
    # Postgres's VACUUM (in fill) cannot run inside the test's transaction.
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(django.VERSION < (6,), reason="the bench runs on Django 6 (django.tasks)"),
]


def bench_queue() -> DjangoQueue:
    return DjangoQueue(Arm(DBTASKS, "test", sys.executable))


def test_fill_writes_finished_rows_that_load_as_tasks():
    assert fill(bench_queue(), 25)["rows"] == 25

    rows = list(DBTaskResult.objects.all())
    assert len(rows) == 25
    assert {(row.status, row.task_path, row.claim_priority) for row in rows} == {
        ("SUCCESSFUL", "bench.tasks.noop", 0)
    }


def test_reset_empties_the_task_tables_workflows_included():
    workflows.chain(tasks.noop, tasks.noop).enqueue()
    tasks.noop.enqueue()

    bench_queue().reset()

    assert not DBTaskResult.objects.exists()
    assert not DBWorkflow.objects.exists()
