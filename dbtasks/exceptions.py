"""Exceptions that dbtasks records as a task's error, or raises to callers."""

from __future__ import annotations

from dbtasks.compat import InvalidTask


class PermanentFailure(Exception):
    """Raise from a task to fail it at once, with no retry left.

    Use it for failures that retrying cannot fix (bad input, a refused
    credential). Chain the cause so the traceback keeps it::

        raise PermanentFailure("ntfy refused the token") from error

    Every other exception is retried as the queue's policy says.
    """


class WorkerLost(Exception):
    """The worker running this attempt stopped heartbeating (killed, or its host died)."""


class WorkerShutdown(Exception):
    """The worker was told to stop at once while this attempt was still running."""


class TaskFunctionMissing(Exception):
    """The task's function can no longer be imported (renamed or removed)."""


class InvalidTaskArguments(InvalidTask):
    """A task's arguments cannot be stored as JSON."""
