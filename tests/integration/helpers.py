"""Helpers for the integration tests that drive a Worker in this process."""

from __future__ import annotations

import copy
from datetime import datetime
from datetime import timedelta

from django.utils import timezone

from dbtasks.compat import task_backends
from dbtasks.models import DBTaskResult
from dbtasks.worker import EXIT_OK
from dbtasks.worker import Worker
from dbtasks.worker import WorkerOptions


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
    worker = Worker(task_backends["default"], WorkerOptions(oneshot=True, **options), clock=clock)
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
