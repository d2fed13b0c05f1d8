"""dbtasks.bulk.enqueue_many(): enqueue()'s contract for many calls, in one INSERT."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.db import transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from dbtasks.backend import DatabaseBackend
from dbtasks.bulk import enqueue_many
from dbtasks.compat import TaskResultStatus
from dbtasks.compat import task_enqueued
from dbtasks.exceptions import InvalidTaskArguments
from dbtasks.models import READY
from dbtasks.models import SCHEDULED
from dbtasks.models import SUCCESSFUL
from dbtasks.models import DBTaskResult
from tests import tasks
from tests.conftest import run_worker


@pytest.fixture
def enqueued():
    """The results task_enqueued was sent for during the test."""
    sent = []

    def receive(sender, task_result, **kwargs):
        assert sender is DatabaseBackend
        sent.append(task_result)

    task_enqueued.connect(receive)
    yield sent
    task_enqueued.disconnect(receive)


def test_each_call_becomes_a_row_with_its_own_result_and_signal(db, enqueued):
    calls = [((n,), {"label": f"n{n}"}) for n in range(5)]

    results = enqueue_many(tasks.echo.using(priority=3, queue_name="low_priority"), calls)

    assert [(r.args, r.kwargs) for r in results] == [([n], {"label": f"n{n}"}) for n in range(5)]
    assert [r.id for r in enqueued] == [r.id for r in results]
    assert len({r.id for r in results}) == 5
    for result in results:
        row = DBTaskResult.objects.get(pk=result.id)
        assert (row.status, row.priority, row.queue_name) == (READY, 3, "low_priority")
        stored = tasks.echo.get_result(result.id)
        assert stored.status == TaskResultStatus.READY
        assert (stored.args, stored.kwargs) == (result.args, result.kwargs)


def test_arguments_come_back_as_they_went_in(db):
    values = ["é ☃ 𝄞", {"nested": [1, 2.5, None, True]}, 2**62, -0.125, "", "'; DROP --", "\\"]

    results = enqueue_many(tasks.echo, [((value,), {"v": value}) for value in values])

    for value, result in zip(values, results, strict=True):
        stored = tasks.echo.get_result(result.id)
        assert (stored.args, stored.kwargs) == ([value], {"v": value})


def test_the_rows_go_in_with_one_insert(db):
    with CaptureQueriesContext(connection) as captured:
        enqueue_many(tasks.noop, [((), {})] * 50)

    inserts = [
        q["sql"] for q in captured.captured_queries if q["sql"].lstrip().startswith("INSERT")
    ]
    assert len(inserts) == 1
    assert DBTaskResult.objects.count() == 50


def test_one_refused_call_writes_nothing(db, enqueued):
    calls: list[tuple[tuple[object, ...], dict[str, object]]] = [
        ((1,), {}),
        ((object(),), {}),
        ((3,), {}),
    ]

    with pytest.raises(InvalidTaskArguments):
        enqueue_many(tasks.echo, calls)

    assert not DBTaskResult.objects.exists()
    assert enqueued == []


@pytest.mark.parametrize(
    "call", [(1, {}), ((), {}, {}), ("ab", {}), ((), [("a", 1)]), "call"], ids=repr
)
def test_a_call_that_is_not_an_args_kwargs_pair_is_a_type_error(db, call):
    with pytest.raises(TypeError, match="call"):
        enqueue_many(tasks.echo, [call])

    assert not DBTaskResult.objects.exists()


def test_the_rows_belong_to_the_callers_transaction(transactional_db):
    with transaction.atomic():
        enqueue_many(tasks.noop, [((), {})] * 3)
        transaction.set_rollback(True)

    assert not DBTaskResult.objects.exists()


def test_calls_due_later_are_scheduled(db):
    task = tasks.noop.using(run_after=timezone.now() + timedelta(hours=1))

    results = enqueue_many(task, [((), {})] * 2)

    assert {DBTaskResult.objects.get(pk=r.id).status for r in results} == {SCHEDULED}
    assert {r.status for r in results} == {TaskResultStatus.READY}


def test_no_calls_enqueue_nothing(db, enqueued):
    assert enqueue_many(tasks.noop, []) == []
    assert enqueued == []


def test_a_worker_runs_every_task_enqueued_in_bulk(transactional_db):
    results = enqueue_many(tasks.echo, [((n,), {}) for n in range(20)])

    run_worker()

    rows = DBTaskResult.objects.filter(pk__in=[r.id for r in results], status=SUCCESSFUL)
    returned = [row.return_value for row in rows]
    assert sorted(value["args"][0] for value in returned if value is not None) == list(range(20))
