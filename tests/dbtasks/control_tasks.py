"""Tasks for the tests of cancelling running tasks and timeouts.

Each records a TaskRun(key) first thing, so a test knows its code has begun
(a RUNNING status alone is set at claim, before a thread takes the row).
"""

from __future__ import annotations

import asyncio
import math
import os
import re
import socket
import time

from asgiref.sync import sync_to_async

from dbtasks.cancellation import is_cancel_requested
from dbtasks.cancellation import raise_if_cancelled
from dbtasks.compat import TaskContext
from dbtasks.compat import task

# Long enough that a test never sees these end on their own.
FOREVER = 3600.0  # seconds


def started(key: str) -> None:
    from tests.testapp.models import TaskRun

    TaskRun.objects.create(key=key, pid=os.getpid())


@task
def checks_until_cancelled(key: str) -> str:
    """Check for a stop request between short steps, as a cancellable task should."""
    started(key)
    deadline = time.monotonic() + FOREVER
    while time.monotonic() < deadline:
        raise_if_cancelled()
        time.sleep(0.02)
    return "never asked to stop"


@task
def finishes_despite_cancel(key: str) -> bool:
    """Wait until asked to stop, then finish anyway (a task that does not stop)."""
    started(key)
    deadline = time.monotonic() + 60
    while not is_cancel_requested():
        assert time.monotonic() < deadline, "no cancel request reached the task"
        time.sleep(0.02)
    return True


@task
async def awaits_forever(key: str) -> str:
    """An async task stuck on an await: only cancelling its coroutine ends it."""
    await sync_to_async(started)(key)
    await asyncio.sleep(FOREVER)
    return "woke up"


@task
def sleeps_forever(key: str) -> str:
    """A sync task that never checks: nothing short of process exit ends it."""
    started(key)
    time.sleep(FOREVER)
    return "woke up"


@task
def reads_a_silent_socket(key: str, port: int) -> str:
    """Blocked on a socket whose peer accepts and never answers (no timeout set)."""
    started(key)
    with socket.create_connection(("127.0.0.1", port)) as connection:
        connection.settimeout(None)
        data = connection.recv(1)
    return f"read {data!r}"


@task(takes_context=True)
def checks_until_fenced(context: TaskContext, key: str) -> str:
    """Attempt 1 runs until asked to stop (its attempt closed under it); a retry returns."""
    started(f"{key}:{context.attempt}")
    if context.attempt > 1:
        return f"attempt {context.attempt} done"
    deadline = time.monotonic() + FOREVER
    while time.monotonic() < deadline:
        raise_if_cancelled()
        time.sleep(0.02)
    return "never asked to stop"


@task
def holds_the_gil(key: str, seconds: float) -> float:
    """Hold the GIL for at least ``seconds`` in one call into C; return how long it held it.

    A catastrophic regular expression: ``re`` never releases the GIL, and
    each more "a" doubles the work. Calibrated here, on this machine.
    """
    started(key)
    pattern = re.compile(r"(a+)+$")
    length, took = 12, 0.0
    while took < 0.05:
        length += 1
        begin = time.perf_counter()
        pattern.match("a" * length + "b")
        took = time.perf_counter() - begin
    # An estimate (a loaded machine slows the calibration); then one more
    # "a" at a time until a single call has held the GIL long enough.
    length += max(0, math.ceil(math.log2(seconds / took)))
    held = 0.0
    while held < seconds:
        begin = time.perf_counter()
        pattern.match("a" * length + "b")
        held = time.perf_counter() - begin
        length += 1
    return held
