"""task_enqueued, task_started and task_finished: when they fire, and with what status."""

from __future__ import annotations

import sys
import threading

import pytest

from dbtasks.backend import DatabaseBackend
from dbtasks.compat import TaskResultStatus
from dbtasks.compat import task_enqueued
from dbtasks.compat import task_finished
from dbtasks.compat import task_started
from dbtasks.models import DBTaskResult
from tests import tasks
from tests.conftest import run_worker


@pytest.fixture
def received():
    """Every dbtasks signal sent during the test: (name, status, attempts, exception type)."""
    events = []
    lock = threading.Lock()  # receivers run in the worker's task threads

    def receiver_for(name):
        def receive(sender, task_result, **kwargs):
            assert sender is DatabaseBackend
            with lock:
                events.append((name, task_result.status, task_result.attempts, sys.exc_info()[0]))

        return receive

    receivers = {
        signal: receiver_for(name)
        for signal, name in [
            (task_enqueued, "enqueued"),
            (task_started, "started"),
            (task_finished, "finished"),
        ]
    }
    for signal, receiver in receivers.items():
        signal.connect(receiver)
    yield events
    for signal, receiver in receivers.items():
        signal.disconnect(receiver)


def test_enqueue_sends_task_enqueued_with_ready(db, received):
    tasks.noop.enqueue()

    assert received == [("enqueued", TaskResultStatus.READY, 0, None)]


def test_a_successful_task_sends_started_then_finished(transactional_db, received):
    tasks.noop.enqueue()
    run_worker()

    assert received == [
        ("enqueued", TaskResultStatus.READY, 0, None),
        ("started", TaskResultStatus.RUNNING, 1, None),
        ("finished", TaskResultStatus.SUCCESSFUL, 1, None),
    ]


def test_a_retried_task_starts_each_attempt_and_finishes_once(transactional_db, received):
    # max_attempts 3 (tests/settings.py): the last failure finishes the task.
    tasks.always_fails.enqueue()
    run_worker()

    assert received == [
        ("enqueued", TaskResultStatus.READY, 0, None),
        ("started", TaskResultStatus.RUNNING, 1, None),
        ("started", TaskResultStatus.RUNNING, 2, None),
        ("started", TaskResultStatus.RUNNING, 3, None),
        # Sent from inside the except block, so django.tasks logs the traceback.
        ("finished", TaskResultStatus.FAILED, 3, ValueError),
    ]


def test_a_task_that_cannot_be_loaded_sends_no_signal(transactional_db, received):
    tasks.noop.enqueue()
    DBTaskResult.objects.update(task_path="tests.tasks.gone")
    run_worker()

    assert [name for name, *_ in received] == ["enqueued"]
    assert DBTaskResult.objects.get().status == TaskResultStatus.FAILED
