"""Unique tasks: a second enqueue with the same key returns the unfinished task."""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import sync_to_async
from django.db import connections
from django.db import transaction

from dbtasks.compat import InvalidTaskBackend
from dbtasks.compat import task_enqueued
from dbtasks.models import DBTaskResult
from dbtasks.unique import aenqueue_unique
from dbtasks.unique import enqueue_unique
from tests import tasks
from tests.conftest import run_worker
from tests.dbtasks.helpers import default_backend
from tests.dbtasks.helpers import race


def test_a_second_enqueue_returns_the_unfinished_task(db):
    first, created = enqueue_unique(tasks.echo, "report:7", 1)
    second, again = enqueue_unique(tasks.echo, "report:7", 2)

    assert (created, again) == (True, False)
    assert second.id == first.id
    assert second.args == [1]  # the task already there, as it was enqueued
    assert DBTaskResult.objects.count() == 1


def test_other_keys_and_plain_enqueues_are_not_affected(db):
    enqueue_unique(tasks.echo, "a")
    _, created = enqueue_unique(tasks.echo, "b")
    tasks.echo.enqueue()
    tasks.echo.enqueue()

    assert created is True
    assert DBTaskResult.objects.count() == 4


def test_a_finished_task_frees_its_key(transactional_db):
    first, _ = enqueue_unique(tasks.noop, "nightly")
    run_worker()

    second, created = enqueue_unique(tasks.noop, "nightly")

    assert created is True
    assert second.id != first.id


def test_a_cancelled_task_frees_its_key(db):
    first, _ = enqueue_unique(tasks.noop, "once")
    default_backend().cancel(first.id)

    _, created = enqueue_unique(tasks.noop, "once")

    assert created is True


def test_a_duplicate_sends_no_enqueued_signal(db):
    sent = []

    def receiver(sender, task_result, **kwargs):
        sent.append(task_result.id)

    task_enqueued.connect(receiver)
    try:
        first, _ = enqueue_unique(tasks.noop, "signal")
        enqueue_unique(tasks.noop, "signal")
    finally:
        task_enqueued.disconnect(receiver)

    assert sent == [first.id]


def test_a_duplicate_inside_the_callers_transaction_leaves_it_usable(db):
    with transaction.atomic():
        enqueue_unique(tasks.noop, "in-transaction")
        _, created = enqueue_unique(tasks.noop, "in-transaction")
        tasks.noop.enqueue()  # the transaction goes on after the refused insert

    assert created is False
    assert DBTaskResult.objects.count() == 2


def test_racing_threads_create_one_task(transactional_db):
    outcomes = race(lambda: enqueue_unique(tasks.noop, "raced")[1], threads=4)

    assert sorted(outcomes) == [False, False, False, True]
    assert DBTaskResult.objects.filter(unique_key="raced").count() == 1


def test_async_callers_get_the_same(transactional_db):
    first, created = asyncio.run(aenqueue_unique(tasks.noop, "async"))
    second, again = asyncio.run(aenqueue_unique(tasks.noop, "async"))
    # sync_to_async ran both in its one shared thread: close that thread's connection.
    asyncio.run(sync_to_async(connections.close_all)())

    assert (created, again, second.id) == (True, False, first.id)


@pytest.mark.parametrize("key", ["", "x" * 256, None])
def test_a_bad_key_is_refused(db, key):
    with pytest.raises(ValueError, match="unique key must be a non-empty string"):
        enqueue_unique(tasks.noop, key)


def test_other_backends_are_refused(db):
    with pytest.raises(InvalidTaskBackend, match="need a dbtasks DatabaseBackend"):
        enqueue_unique(tasks.noop.using(backend="immediate"), "k")


def test_requeueing_a_failed_unique_task_skips_a_taken_key(db):
    from django.utils import timezone

    failed, _ = enqueue_unique(tasks.noop, "k")
    default_backend().cancel(failed.id)
    enqueue_unique(tasks.noop, "k")  # the key's new unfinished task

    assert DBTaskResult.objects.filter(pk=failed.id).requeue_failed(timezone.now()) == 0
