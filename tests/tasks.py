"""Fixture tasks for the test suite (as Django's tests/tasks/tasks.py).

Tasks that must be observed from another process record their runs in the
``TaskRun`` side table (tests/testapp).
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from typing import Any

# dbtasks.compat, so these also run on Django 5.2 with the django-tasks backport.
from dbtasks.compat import TaskContext
from dbtasks.compat import task
from dbtasks.exceptions import PermanentFailure


@task
def noop() -> None:
    """Do nothing."""


@task
def echo(*args: Any, **kwargs: Any) -> dict[str, Any]:
    return {"args": list(args), "kwargs": kwargs}


@task
def always_fails(message: str = "always fails") -> None:
    raise ValueError(message)


@task
def fails_permanently() -> None:
    raise PermanentFailure("retrying cannot help")


@task(takes_context=True)
def fails_until_attempt(context: TaskContext, succeed_on: int) -> int:
    """Fail until attempt ``succeed_on``; return the attempt it succeeded on."""
    if context.attempt < succeed_on:
        raise RuntimeError(f"attempt {context.attempt} fails")
    return context.attempt


@task(takes_context=True)
def report_context(context: TaskContext) -> dict[str, Any]:
    return {"attempt": context.attempt, "id": context.task_result.id}


@task
def raises_system_exit() -> None:
    raise SystemExit(3)


@task
def returns_unserializable() -> object:
    return object()


@task
def sleep_for(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


@task
async def async_double(value: int) -> int:
    await asyncio.sleep(0)
    return value * 2


@task(priority=10)
def high_priority() -> str:
    return "high"


@task
def record_run(key: str, seconds: float = 0) -> str:
    """Count this run in the TaskRun side table, then maybe sleep."""
    from tests.testapp.models import TaskRun

    TaskRun.objects.create(key=key, pid=os.getpid())
    if seconds:
        time.sleep(seconds)
    return key


# Set by a test to let blocks_until_released() return (workers in this process only).
RELEASE = threading.Event()


@task
def blocks_until_released(key: str) -> str:
    """Count this run in TaskRun, then wait until the test sets RELEASE (five minutes at most)."""
    from tests.testapp.models import TaskRun

    TaskRun.objects.create(key=key, pid=os.getpid())
    RELEASE.wait(300)
    return key


def not_a_task(key: str = "not_a_task") -> None:
    """A plain function: rows pointing here must never run it (a run leaves a TaskRun)."""
    from tests.testapp.models import TaskRun

    TaskRun.objects.create(key=key, pid=os.getpid())


@task(takes_context=True)
def slow_first_attempt(context: TaskContext, key: str, seconds: float) -> int:
    """Count the run in TaskRun; sleep on the first attempt only. Return the attempt."""
    from tests.testapp.models import TaskRun

    TaskRun.objects.create(key=key, pid=os.getpid())
    if context.attempt == 1:
        time.sleep(seconds)
    return context.attempt


@task
def asks_to_retry_later(seconds: float) -> None:
    """Fail, asking to be retried no sooner than ``seconds`` from now."""
    from dbtasks.exceptions import RetryLater

    raise RetryLater("come back later", delay=seconds)


@task
def fails_with_unstorable_text(size: int = 0) -> None:
    """Fail with a message Postgres text cannot hold (NUL, a lone surrogate), ``size`` long."""
    raise ValueError("a NUL \x00 and a lone surrogate \ud800 " + "x" * size)


@task
def returns_text_of(size: int) -> str:
    return "x" * size


@task
def add(value: int, amount: int) -> int:
    """A chain step: the previous step's return value plus ``amount``."""
    return value + amount


@task
def tally(outcomes: list[dict[str, Any]], key: str) -> dict[str, list[str]]:
    """A group's callback: count the run in TaskRun, sort the members' ids by status."""
    from tests.testapp.models import TaskRun

    TaskRun.objects.create(key=key, pid=os.getpid())
    by_status: dict[str, list[str]] = {}
    for outcome in outcomes:
        by_status.setdefault(outcome["status"], []).append(outcome["id"])
    return by_status


@task
def record_step(previous: str, key: str, expected: str) -> str:
    """A chain step: check it received the previous step's value, count the run in TaskRun."""
    from tests.testapp.models import TaskRun

    if previous != expected:
        raise ValueError(f"step {key} received {previous!r}, not {expected!r}")
    TaskRun.objects.create(key=key, pid=os.getpid())
    return key


@task
def record_run_and_wait(key: str, seconds: float) -> str:
    """``record_run``, waiting on an Event instead of time.sleep().

    libfaketime (the clock-skew tests) breaks time.sleep()'s clock_nanosleep
    when it leaves the monotonic clock alone; an Event's timed wait works.
    """
    from tests.testapp.models import TaskRun

    TaskRun.objects.create(key=key, pid=os.getpid())
    threading.Event().wait(seconds)
    return key


@task
def kills_its_process(key: str, how: str, after: list[str]) -> None:
    """A poison pill: count the run in TaskRun, then end the worker's process.

    ``how``: "exit" (``os._exit``) or "kill" (SIGKILL to itself). It first
    waits (30 s at most) until each task in ``after`` has recorded a run, so
    that on its first run it dies with them in the middle of theirs.
    """
    from tests.testapp.models import TaskRun

    TaskRun.objects.create(key=key, pid=os.getpid())
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        started = TaskRun.objects.filter(key__in=after).values("key").distinct().count()
        if started == len(set(after)):
            break
        time.sleep(0.01)
    if how == "exit":
        os._exit(70)
    os.kill(os.getpid(), signal.SIGKILL)
