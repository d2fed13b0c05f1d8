"""Concurrency limits: at most N tasks per key READY or RUNNING, the others BLOCKED."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.checks import run_checks
from django.utils import timezone

from dbtasks.models import BLOCKED
from dbtasks.models import FAILED
from dbtasks.models import READY
from dbtasks.models import SUCCESSFUL
from dbtasks.models import DBSemaphore
from dbtasks.models import DBTaskResult
from dbtasks.options import OptionError
from dbtasks.options import parse_options
from dbtasks.sql import semaphores
from tests.dbtasks import limit_tasks
from tests.dbtasks.helpers import Running
from tests.dbtasks.helpers import default_backend
from tests.dbtasks.helpers import override_options
from tests.dbtasks.helpers import row_of
from tests.live import wait_until

LIMITED = "tests.dbtasks.limit_tasks.limited"


def limit(settings, path: str = LIMITED, **concurrency) -> None:
    override_options(settings, tasks={path: {"concurrency": concurrency}})


def statuses(results) -> list[str]:
    return [row_of(result).status for result in results]


def run_until(predicate, what: str) -> None:
    """Run a worker (2 threads) until ``predicate()`` holds, then stop it.

    Not --oneshot: a oneshot worker may find nothing to claim in the moment
    between a close and the slot it passes on, and stop early.
    """
    running = Running(threads=2)
    try:
        wait_until(predicate, timeout=30, what=what)
    finally:
        running.worker.request_stop()
        running.join(timeout=30)


def test_tasks_past_the_limit_wait_blocked(db, settings):
    limit(settings, limit=2)
    results = [limit_tasks.limited.enqueue("a", n) for n in range(4)]

    assert statuses(results) == [READY, READY, BLOCKED, BLOCKED]
    assert row_of(results[0]).concurrency_key == f"task:{LIMITED}"
    assert DBSemaphore.objects.get().in_use == 2
    # Blocked rows read as READY through Django's API: they have not started.
    assert {result.status for result in results} == {"READY"}


def test_a_key_from_an_argument_limits_each_value_apart(db, settings):
    limit(settings, limit=1, key="tenant")
    a1 = limit_tasks.limited.enqueue("a", 1)
    a2 = limit_tasks.limited.enqueue(tenant="a", n=2)
    b1 = limit_tasks.limited.enqueue("b", 1)

    assert statuses([a1, a2, b1]) == [READY, BLOCKED, READY]
    assert row_of(a2).concurrency_key == f"task:{LIMITED}:a"


def test_a_key_from_a_function(db, settings):
    limit(settings, limit=1, key="tests.dbtasks.limit_tasks.tenant_key")
    first = limit_tasks.limited.enqueue("x", 1)
    second = limit_tasks.limited.enqueue(tenant="x", n=2)

    assert statuses([first, second]) == [READY, BLOCKED]
    assert row_of(second).concurrency_key == f"task:{LIMITED}:x"


def test_a_queue_limit_covers_every_task_on_the_queue(db, settings):
    override_options(settings, concurrency={"limit": 1})
    first = limit_tasks.limited.enqueue("a", 1)
    second = limit_tasks.fails.enqueue("b")

    assert statuses([first, second]) == [READY, BLOCKED]
    assert row_of(second).concurrency_key == "queue:default"


def test_each_finish_passes_the_slot_to_the_oldest_blocked_task(transactional_db, settings):
    limit(settings, limit=1)
    results = [limit_tasks.limited.enqueue("a", n) for n in range(3)]

    run_until(lambda: statuses(results) == [SUCCESSFUL] * 3, "all three to succeed")

    starts = [row_of(result).started_at for result in results]
    assert None not in starts
    assert starts == sorted(start for start in starts if start is not None)
    assert DBSemaphore.objects.get().in_use == 0


def test_cancelling_a_waiting_task_frees_its_slot(db, settings):
    limit(settings, limit=1)
    first = limit_tasks.limited.enqueue("a", 1)
    second = limit_tasks.limited.enqueue("a", 2)

    assert default_backend().cancel(first.id) is True

    assert statuses([first, second]) == [FAILED, READY]
    assert DBSemaphore.objects.get().in_use == 1


def test_a_retry_in_its_backoff_waits_blocked_without_a_slot(transactional_db, settings):
    override_options(
        settings,
        backoff_factor=10,
        tasks={"tests.dbtasks.limit_tasks.fails": {"concurrency": {"limit": 1}}},
    )
    failing = limit_tasks.fails.enqueue("a")
    waiting = limit_tasks.fails.enqueue("b")

    # The first fails and waits out its backoff, BLOCKED; its slot lets the second run.
    run_until(
        lambda: DBTaskResult.objects.filter(status=BLOCKED, attempt_count=1).count() == 2,
        "both tasks to fail once",
    )

    assert statuses([failing, waiting]) == [BLOCKED, BLOCKED]
    assert DBSemaphore.objects.get().in_use == 0
    # Once due, the repair (each heartbeat interval) gives the oldest a slot.
    later = timezone.now() + timedelta(seconds=60)
    backend = default_backend()
    assert (
        semaphores.give_back(
            backend.db_alias, backend.alias, ["task:" + failing.task.module_path], later
        )
        == 1
    )
    assert statuses([failing, waiting]) == [READY, BLOCKED]


def test_a_task_due_later_waits_blocked_until_due(db, settings):
    limit(settings, limit=1)
    later = limit_tasks.limited.using(run_after=timezone.now() + timedelta(hours=1)).enqueue("a", 1)
    now = limit_tasks.limited.enqueue("a", 2)

    assert statuses([later, now]) == [BLOCKED, READY]


def test_the_repair_recounts_a_leaked_slot(db, settings):
    limit(settings, limit=1)
    first = limit_tasks.limited.enqueue("a", 1)
    second = limit_tasks.limited.enqueue("a", 2)
    # A task that finished without giving its slot back (a crash, say).
    DBTaskResult.objects.filter(pk=first.id).update(status=FAILED)
    backend = default_backend()

    keys = semaphores.keys_to_repair(backend.db_alias, backend.alias)
    assert semaphores.give_back(backend.db_alias, backend.alias, keys, timezone.now()) == 1

    assert statuses([first, second]) == [FAILED, READY]
    assert DBSemaphore.objects.get().in_use == 1


@pytest.mark.parametrize(
    ("concurrency", "message"),
    [
        ({"limit": 0}, "['concurrency']['limit'] must be"),
        ({}, "['concurrency']['limit'] is required"),
        ({"limit": 2, "key": "not a name"}, "['concurrency']['key'] must be"),
        ({"limit": 2, "every": 3}, "'every'"),
    ],
)
def test_bad_concurrency_options_name_the_key(concurrency, message):
    with pytest.raises(OptionError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_options("default", ["default"], {"tasks": {LIMITED: {"concurrency": concurrency}}})


def test_a_key_function_that_cannot_be_imported_fails_the_check(settings):
    limit(settings, limit=1, key="tests.dbtasks.limit_tasks.no_such_function")

    errors = [error for error in run_checks() if error.id == "dbtasks.E002"]

    path = "tests.dbtasks.limit_tasks.no_such_function"
    assert [error.msg for error in errors] == [
        f"The concurrency key function {path!r} cannot be imported."
    ]


def test_a_key_naming_a_missing_argument_refuses_the_enqueue(db, settings):
    limit(settings, limit=1, key="tenant_id")

    with pytest.raises(TypeError, match="'tenant_id'"):
        limit_tasks.limited.enqueue("a", 1)


def test_the_admin_lists_each_key_with_its_slots(admin_client, settings):
    limit(settings, limit=1, key="tenant")
    running = limit_tasks.limited.enqueue("a", 1)
    blocked = limit_tasks.limited.enqueue("a", 2)

    page = admin_client.get("/admin/dbtasks/dbsemaphore/").content.decode()
    tasks = admin_client.get(
        "/admin/dbtasks/dbtaskresult/", {"q": f"task:{LIMITED}:a", "state": "blocked"}
    ).content.decode()

    assert f"task:{LIMITED}:a" in page
    assert f"/admin/dbtasks/dbtaskresult/{blocked.id}/change/" in tasks
    assert f"/admin/dbtasks/dbtaskresult/{running.id}/change/" not in tasks


def test_requeued_failed_tasks_wait_for_a_slot(db, settings):
    limit(settings, limit=1)
    first = limit_tasks.limited.enqueue("a", 1)
    second = limit_tasks.limited.enqueue("a", 2)
    now = timezone.now()
    DBTaskResult.objects.filter(pk=first.id).update(status=FAILED, finished_at=now)
    DBTaskResult.objects.filter(pk=second.id).update(status=FAILED, finished_at=now)

    assert DBTaskResult.objects.filter(pk__in=[first.id, second.id]).requeue_failed(now) == 2

    assert sorted(statuses([first, second])) == [BLOCKED, READY]
    assert DBSemaphore.objects.get().in_use == 1
