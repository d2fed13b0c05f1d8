"""Exceptions that dbtasks records as a task's error, or raises to callers."""

from __future__ import annotations

from datetime import timedelta

from dbtasks.compat import InvalidTask


class PermanentFailure(Exception):
    """Raise from a task to fail it at once, with no retry left.

    Use it for failures that retrying cannot fix (bad input, a refused
    credential). Chain the cause so the traceback keeps it::

        raise PermanentFailure("ntfy refused the token") from error

    Every other exception is retried as the queue's policy says.
    """


class RetryLater(Exception):
    """Raise from a task to be retried no sooner than ``delay`` (like HTTP Retry-After).

    The retry still counts against ``max_attempts``; the wait is the longer
    of ``delay`` and the queue's backoff::

        raise RetryLater("ntfy is rate limiting", delay=timedelta(seconds=30)) from error
    """

    def __init__(self, message: str, *, delay: timedelta | float) -> None:
        super().__init__(message)
        self.delay = delay if isinstance(delay, timedelta) else timedelta(seconds=delay)


class OutcomeNotStored(PermanentFailure):
    """The attempt's outcome could not be stored, so this error is recorded in its place.

    A return value over ``OPTIONS['max_return_size']``, or one the database
    refused. Running the task again would end the same way: no retry.
    """


class TaskCancelled(Exception):
    """The task was cancelled (``DatabaseBackend.cancel``, or the admin); never retried.

    Before it ran, it never runs. While it ran, the worker asked it to stop:
    raised by ``dbtasks.cancellation.raise_if_cancelled()``, or recorded when an
    ``async def`` task's coroutine was cancelled.
    """


class TaskTimeout(Exception):
    """The attempt ran past its ``timeout``; the retry policy applies."""


class WorkerLost(Exception):
    """The worker running this attempt stopped heartbeating (killed, or its host died)."""


class WorkerShutdown(Exception):
    """The worker was told to stop at once while this attempt was still running."""


class AttemptClosed(Exception):
    """Raised in a task whose attempt was closed by someone else while it ran.

    Lost-worker recovery (the worker was presumed lost), a shutdown or a
    purge closed the attempt; its retry may be running elsewhere already.
    The worker asks the task to stop (``raise_if_cancelled()`` raises this)
    and discards whatever outcome it still reaches: the attempt is recorded
    already.
    """


class TaskFunctionMissing(Exception):
    """The task's function can no longer be imported (renamed or removed)."""


class TaskArgumentsCorrupt(Exception):
    """A row's arguments are not the ``{"args": [...], "kwargs": {...}}`` enqueue() writes."""


class InvalidTaskArguments(InvalidTask, TypeError):
    """A task's arguments cannot be stored as JSON.

    Also a ``TypeError``, which is what Django documents (and its own
    backends raise) for arguments that are not JSON-serialisable: callers
    written against either catch it.
    """


class WorkflowDoesNotExist(LookupError):
    """No workflow has this id (never enqueued, or purged)."""
