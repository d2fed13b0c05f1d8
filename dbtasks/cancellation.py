"""Stopping a running task: what the task calls, and what the worker sets.

Python cannot stop a thread from outside, so a sync task that may be
cancelled (``DatabaseBackend.cancel()`` on a RUNNING task) or may run past
its ``timeout`` checks now and then, between steps::

    from dbtasks.cancellation import raise_if_cancelled

    @task
    def export(report_id):
        for page in pages(report_id):
            raise_if_cancelled()  # ends the attempt with TaskCancelled or TaskTimeout
            write(page)

An ``async def`` task needs nothing: the worker cancels its coroutine, which
sees ``asyncio.CancelledError`` at its next ``await``. Outside a worker (the
immediate backend, a shell) nothing is ever requested and both functions are
no-ops.

The worker side is ``AttemptControl``: one per running attempt, made by the
worker and handed to the task's thread through a context variable (which
``async_to_sync`` copies into the coroutine's thread too).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import threading
from collections.abc import Awaitable
from collections.abc import Callable
from typing import Any

from dbtasks.exceptions import AttemptClosed
from dbtasks.exceptions import TaskCancelled
from dbtasks.exceptions import TaskTimeout

StopReason = TaskCancelled | TaskTimeout | AttemptClosed


class AttemptControl:
    """One running attempt's stop request, shared by the worker and the task's thread."""

    def __init__(self, row_id: int, attempt: int) -> None:
        self.row_id = row_id
        self.attempt = attempt
        self.thread = threading.current_thread()
        self._lock = threading.Lock()
        self._reason: StopReason | None = None
        self._coroutine: tuple[asyncio.AbstractEventLoop, asyncio.Task[Any]] | None = None

    @property
    def reason(self) -> StopReason | None:
        """Why the attempt was asked to stop, or None if it was not."""
        return self._reason

    def stop(self, reason: StopReason) -> bool:
        """Ask the attempt to stop; return False if it had been asked already.

        The first reason stays: a task cancelled and then past its timeout
        ends as cancelled. An async task's coroutine is cancelled at once.
        """
        with self._lock:
            if self._reason is not None:
                return False
            self._reason = reason
            coroutine = self._coroutine
        if coroutine is not None:
            cancel_coroutine(*coroutine)
        return True

    def bind(self, loop: asyncio.AbstractEventLoop, task: asyncio.Task[Any]) -> None:
        """The async task's coroutine runs as ``task`` on ``loop``: cancel it when asked."""
        with self._lock:
            self._coroutine = (loop, task)
            stopped = self._reason is not None
        if stopped:
            task.cancel()  # asked before the coroutine started


def cancel_coroutine(loop: asyncio.AbstractEventLoop, task: asyncio.Task[Any]) -> None:
    # A closed loop raises RuntimeError: the coroutine has ended already.
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(task.cancel)


_current: contextvars.ContextVar[AttemptControl | None] = contextvars.ContextVar(
    "dbtasks_attempt", default=None
)


def current_attempt() -> AttemptControl | None:
    """The attempt this code runs in, when a dbtasks worker runs it."""
    return _current.get()


def is_cancel_requested() -> bool:
    """Whether the running task was asked to stop (cancelled, past its timeout, fenced)."""
    control = _current.get()
    return control is not None and control.reason is not None


def raise_if_cancelled() -> None:
    """Raise ``TaskCancelled``, ``TaskTimeout`` or ``AttemptClosed`` if asked to stop."""
    control = _current.get()
    if control is not None and control.reason is not None:
        raise control.reason


def run_controlled(control: AttemptControl, call: Callable[[], Any]) -> Any:
    """Call ``call()`` with ``control`` as the current attempt."""
    token = _current.set(control)
    try:
        return call()
    finally:
        _current.reset(token)


def cancellable(
    func: Callable[..., Awaitable[Any]], control: AttemptControl
) -> Callable[..., Awaitable[Any]]:
    """Wrap an ``async def`` task so ``control`` can cancel its coroutine."""

    async def run(*args: Any, **kwargs: Any) -> Any:
        loop = asyncio.get_running_loop()
        task = asyncio.ensure_future(func(*args, **kwargs))
        control.bind(loop, task)
        return await task

    return run
