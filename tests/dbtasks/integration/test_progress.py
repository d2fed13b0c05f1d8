"""``with_progress()`` annotates your own rows with their results' progress, in one query."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.db.models import QuerySet
from django.test.utils import CaptureQueriesContext

from dbtasks.models import DBTaskResult
from dbtasks.progress import with_progress
from tests import tasks
from tests.testapp.models import TaskRun

pytestmark = pytest.mark.django_db


def annotated(runs: QuerySet[TaskRun]) -> QuerySet[Any]:
    """``with_progress()`` of each run's ``key``, typed so that its annotations can be read."""
    return with_progress(runs, "key")


def test_the_text_changes_with_the_state():
    result = tasks.noop.enqueue()
    TaskRun.objects.create(key=result.id)
    TaskRun.objects.create(key="not a result id\n")

    with CaptureQueriesContext(connection) as queries:
        rows = list(annotated(TaskRun.objects.order_by("pk")).values("progress"))
    assert len(queries) == 1
    assert rows == [{"progress": f"{result.id}:READY:0"}, {"progress": None}]

    DBTaskResult.objects.filter(pk=result.id).update(status="SUCCESSFUL", attempt_count=1)
    (row, _) = annotated(TaskRun.objects.order_by("pk")).values("progress")
    assert row["progress"] == f"{result.id}:SUCCESSFUL:1"


def test_a_prefix_keeps_two_results_of_a_row_apart():
    noop = tasks.noop.enqueue()
    TaskRun.objects.create(key=noop.id)

    noop_progress = with_progress(TaskRun.objects.all(), "key", task=tasks.noop, prefix="noop_")
    both: QuerySet[Any] = with_progress(
        noop_progress,
        "key",
        task=tasks.always_fails,  # not this result's task: no progress
    )
    rows = both.values("noop_progress", "noop_progress_due", "progress", "progress_due")

    (row,) = rows
    assert row["noop_progress"] == f"{noop.id}:READY:0"
    assert row["noop_progress_due"] == DBTaskResult.objects.get(pk=noop.id).available_after
    assert (row["progress"], row["progress_due"]) == (None, None)


@pytest.mark.parametrize(
    "text",
    [
        "0",
        "-{pk}",
        "0{pk}",
        " {pk}",
        "{pk} ",
        "{pk}\n",
        "{pk}.0",
        "{pk}abc",
        "+{pk}",
        "1e3",
        "99999999999999999999",
        "\uff19",  # a fullwidth digit
        "",
    ],
)
def test_only_text_exactly_like_the_pk_finds_the_result(text):
    result = tasks.noop.enqueue()
    TaskRun.objects.create(key=text.format(pk=result.id))
    TaskRun.objects.create(key=result.id)

    rows = list(annotated(TaskRun.objects.order_by("pk")).values_list("progress", flat=True))

    # Never a database error, and only the exact text finds it.
    assert rows == [None, f"{result.id}:READY:0"]
