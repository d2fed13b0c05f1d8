"""Helpers for the integration tests that drive a Worker in this process."""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable
from datetime import datetime
from datetime import timedelta

from django.db import connection
from django.utils import timezone

from dbtasks.backend import DatabaseBackend
from dbtasks.compat import task_backends
from dbtasks.models import RUNNING
from dbtasks.models import DBTaskResult
from dbtasks.models import DBWorker
from dbtasks.worker import EXIT_OK
from dbtasks.worker import Worker
from dbtasks.worker import WorkerOptions
from tests.live import patience
from tests.live import wait_until


def default_backend() -> DatabaseBackend:
    """settings.TASKS["default"], which the test settings make a dbtasks DatabaseBackend."""
    backend = task_backends["default"]
    assert isinstance(backend, DatabaseBackend), backend
    return backend


class Clock:
    """A clock that only moves when told to (``Worker(clock=...)``)."""

    def __init__(self, now: datetime | None = None) -> None:
        self.now = now or timezone.now()

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def run_worker_at(clock: Clock, **options) -> Worker:
    """Run a --oneshot Worker whose time is ``clock``; return it once it has stopped."""
    worker = Worker(default_backend(), WorkerOptions(oneshot=True, **options), clock=clock)
    assert worker.run() == EXIT_OK
    return worker


def row_of(result) -> DBTaskResult:
    """The database row behind a TaskResult."""
    return DBTaskResult.objects.get(pk=result.id)


def override_options(settings, **options) -> None:
    """Make settings.TASKS the test settings with these OPTIONS keys replaced.

    A new TASKS dict, never a nested assignment: only that resets the task
    backends, and the test settings' dicts stay as they were for other tests.
    """
    tasks_setting = copy.deepcopy(settings.TASKS)
    tasks_setting["default"]["OPTIONS"] = {**tasks_setting["default"]["OPTIONS"], **options}
    settings.TASKS = tasks_setting


class Running:
    """A Worker.run() in a thread."""

    def __init__(self, **options) -> None:
        self.worker = Worker(default_backend(), WorkerOptions(**options))
        self.code: int | None = None
        self.thread = threading.Thread(target=self._run)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.code = self.worker.run()
        finally:
            connection.close()  # the main loop's connection, opened in this thread

    def join(self, timeout: float = 30) -> int | None:
        self.thread.join(patience(timeout))
        assert not self.thread.is_alive(), "the worker did not stop"
        return self.code


def claim_ahead_by(monkeypatch, count: int, *, write_after: float | None = None) -> None:
    """Make every claim of a worker take ``count`` rows ahead (``dbtasks/worker/ahead.py``).

    ``write_after``: the main thread writes kept outcomes (``batching.py``)
    only once they are that old, instead of ``ahead.BUDGET``.
    """
    from dbtasks.worker.ahead import ClaimAhead

    monkeypatch.setattr(ClaimAhead, "extra", lambda self: count)
    if write_after is not None:
        monkeypatch.setattr("dbtasks.worker.loop.BUDGET", write_after)


def join_task_threads(timeout: float = 30) -> None:
    """Wait for the task threads of the workers this process ran (abandoned ones included)."""
    for thread in threading.enumerate():
        if thread.name.startswith("dbtasks-task-"):
            thread.join(timeout=patience(timeout))


def wait_for_status(result, status, timeout: float = 30) -> None:
    wait_until(
        lambda: row_of(result).status == status,
        timeout=timeout,
        what=f"task {result.id} to become {status}",
        interval=0.02,
    )


def has_started(result) -> bool:
    """Whether the task's code has begun: tests.tasks.record_run records a TaskRun first thing.

    A RUNNING status alone is not enough: a row claimed a moment before a stop
    may not have reached its thread yet, and a stopping worker hands such a
    row back unstarted (test_hand_back.py).
    """
    from tests.testapp.models import TaskRun

    return TaskRun.objects.filter(key=result.args[0]).exists()


def wait_until_started(result, timeout: float = 30) -> None:
    wait_until(lambda: has_started(result), timeout=timeout, what=f"task {result.id} to start")


def race[T](call: Callable[[], T], *, threads: int = 4) -> list[T]:
    """Run ``call`` in ``threads`` threads released at the same moment; return what each gave."""
    barrier = threading.Barrier(threads)
    returned: list[T] = []

    def run() -> None:
        barrier.wait()
        try:
            returned.append(call())
        finally:
            connection.close()  # this thread's own connection

    started = [threading.Thread(target=run) for _ in range(threads)]
    for thread in started:
        thread.start()
    for thread in started:
        thread.join(timeout=patience(30))
    return returned


def running_on(worker_id, *, heartbeat_age, attempt=1, run_alone=False):
    """A task RUNNING on ``worker_id``, whose last heartbeat is ``heartbeat_age`` old."""
    from tests import tasks

    now = timezone.now()
    result = tasks.echo.enqueue()
    DBTaskResult.objects.filter(pk=result.id).update(
        status=RUNNING,
        worker_id=worker_id,
        attempt_count=attempt,
        started_at=now - timedelta(minutes=1),
        last_attempted_at=now - timedelta(minutes=1),
        run_alone=run_alone,
    )
    DBWorker.objects.update_or_create(
        worker_id=worker_id,
        defaults={
            "backend_name": "default",
            "hostname": "h",
            "pid": 1,
            "started_at": now - timedelta(minutes=1),
            "heartbeat_at": now - heartbeat_age,
        },
    )
    return result
