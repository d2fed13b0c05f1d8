"""Step 3 of the tour: the table behind the backend, one row per enqueued task.

``DBTaskResult`` carries what Django's ``TaskResult`` needs, plus
``available_after`` (when it may run next) and ``worker_id`` (who runs it
now). Each finished run is a ``DBTaskAttempt`` (``attempts.py``), with the
exception and traceback: ``TaskResult.errors``, ``worker_ids`` and so
``attempts`` are built from those. ``DBTaskResult.to_task_result()`` is the
only place a ``TaskResult`` is built.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING
from typing import Any
from typing import overload

from django.core.exceptions import SuspiciousOperation
from django.db import models
from django.utils.module_loading import import_string

from dbtasks.compat import Task
from dbtasks.compat import TaskError
from dbtasks.compat import TaskResult
from dbtasks.compat import TaskResultStatus
from dbtasks.exceptions import TaskArgumentsCorrupt
from dbtasks.exceptions import TaskFunctionMissing
from dbtasks.models.indexes import RESULT_CONSTRAINTS
from dbtasks.models.indexes import RESULT_INDEXES
from dbtasks.models.queries import DBTaskResultQuerySet
from dbtasks.models.states import MAX_LENGTH_WORKER_ID
from dbtasks.models.states import READY
from dbtasks.models.states import RUNNING
from dbtasks.models.states import STATUS_CHOICES
from dbtasks.models.states import WAITING

if TYPE_CHECKING:
    from dbtasks.models.attempts import DBTaskAttempt


class DBTaskResult(models.Model):
    """One enqueued task and where it is in its life."""

    task_path = models.CharField(max_length=255)
    backend_name = models.CharField(max_length=100)
    queue_name = models.CharField(max_length=100)
    priority = models.SmallIntegerField(default=0)
    # The priority the claim orders by: the task's own, except for the rows
    # of a fair concurrency key (dbtasks.concurrency), which all claim at 0:
    # their priority orders only their key's own waiting rows.
    claim_priority = models.SmallIntegerField(default=0, db_default=0)
    run_after = models.DateTimeField(null=True, blank=True)
    takes_context = models.BooleanField(default=False)
    # {"args": [...], "kwargs": {...}}, checked to survive a JSON round trip.
    arguments = models.JSONField(default=dict)

    status = models.CharField(max_length=10, choices=STATUS_CHOICES, default=READY)
    enqueued_at = models.DateTimeField()
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    last_attempted_at = models.DateTimeField(null=True, blank=True)
    return_value = models.JSONField(null=True, blank=True)
    # Set when the task was cancelled before it ran (status FAILED), and why
    # if not by a caller (a workflow step whose previous step failed, say).
    cancelled_at = models.DateTimeField(null=True, blank=True)
    # Database defaults too: rows written by code that predates these columns
    # (a rolling deploy, a bulk INSERT) still insert.
    cancel_reason = models.TextField(blank=True, default="", db_default="")
    # A member of a workflow (dbtasks.workflows): its finish releases others.
    in_workflow = models.BooleanField(default=False, db_default=False)
    # dbtasks.unique.enqueue_unique(): at most one unfinished row per key
    # (dbtasks_unique_unfinished); empty for ordinary tasks.
    unique_key = models.CharField(max_length=255, blank=True, default="", db_default="")
    # Set when cancel() was asked while the task ran; the worker running it
    # passes the request on (dbtasks.cancellation). Kept after the attempt, as
    # the record that a cancel was asked, whatever the task did with it.
    cancel_requested_at = models.DateTimeField(null=True, blank=True)
    # The concurrency limit this row counts against (dbtasks.concurrency);
    # empty for tasks without one. READY and RUNNING rows hold a slot of it,
    # BLOCKED rows wait for one.
    concurrency_key = models.CharField(max_length=255, blank=True, default="", db_default="")
    # The rate limit this row's start counts against (dbtasks.rate_limits);
    # empty for tasks without one. Such a row waits READY outside the claim's
    # index, in dbtasks_rate_idx, until its key's bucket has a slot.
    rate_key = models.CharField(max_length=255, blank=True, default="", db_default="")

    # When the task may run next: run_after, or after a failure the backoff.
    available_after = models.DateTimeField()
    # Runs started so far, the current one included.
    attempt_count = models.PositiveIntegerField(default=0)
    # The worker running it now; empty unless RUNNING.
    worker_id = models.CharField(max_length=MAX_LENGTH_WORKER_ID, blank=True)
    # Set when a worker died while running it: it may be what killed the
    # process (os._exit, a signal, a crash in C code). From then on it runs
    # alone in a worker process, so another death is blamed on it for sure
    # and never again on tasks that shared the process (dbtasks/worker/alone.py).
    run_alone = models.BooleanField(default=False, db_default=False)

    objects = DBTaskResultQuerySet.as_manager()

    class Meta:
        verbose_name = "task"
        # Every index beside the query it serves: indexes.py.
        indexes = RESULT_INDEXES
        constraints = RESULT_CONSTRAINTS

    def __str__(self) -> str:
        return f"{self.task_path} ({self.status}, id={self.pk})"

    @property
    def public_status(self) -> TaskResultStatus:
        """The status Django's API knows: dbtasks' waiting states read as READY."""
        if self.status in WAITING:
            return TaskResultStatus.READY
        return TaskResultStatus(self.status)

    @property
    def args(self) -> list[Any]:
        return self.stored_arguments()[0]

    @property
    def kwargs(self) -> dict[str, Any]:
        return self.stored_arguments()[1]

    def stored_arguments(self) -> tuple[list[Any], dict[str, Any]]:
        """Return the stored args and kwargs; raise TaskArgumentsCorrupt if malformed.

        enqueue() always writes {"args": [...], "kwargs": {...}}; anything else
        (a hand edit, another writer) must fail this task, not the code reading it.
        """
        arguments = self.arguments
        if isinstance(arguments, dict):
            args, kwargs = arguments.get("args", []), arguments.get("kwargs", {})
            if isinstance(args, list) and isinstance(kwargs, dict):
                return list(args), dict(kwargs)
        raise TaskArgumentsCorrupt(
            f"Task id={self.pk} path={self.task_path}: its arguments must be "
            f"{{'args': [...], 'kwargs': {{...}}}}, got {arguments!r}."
        )

    def load_task(self) -> Task[..., Any]:
        """Import the task this row runs; raise TaskFunctionMissing if it is gone."""
        try:
            task = import_string(self.task_path)
        except ImportError as error:
            raise TaskFunctionMissing(
                f"Task function {self.task_path!r} cannot be imported: {error}"
            ) from error
        if not isinstance(task, Task):
            # Only ever call things declared with @task, whatever the row says.
            raise SuspiciousOperation(f"{self.task_path!r} is not a Task.")
        return task

    def cancellation_errors(self) -> list[TaskError]:
        """A cancelled task has no failed run; its error says it was cancelled."""
        if self.cancelled_at is None:
            return []
        because = f": {self.cancel_reason}" if self.cancel_reason else "."
        return [
            TaskError(
                exception_class_path="dbtasks.exceptions.TaskCancelled",
                traceback=(
                    "dbtasks.exceptions.TaskCancelled: cancelled at "
                    f"{self.cancelled_at.isoformat(timespec='seconds')} before it ran{because}\n"
                ),
            )
        ]

    @overload
    def to_task_result[**P, R](
        self, history: Sequence[DBTaskAttempt], task: Task[P, R]
    ) -> TaskResult[P, R]: ...
    @overload
    def to_task_result(
        self, history: Sequence[DBTaskAttempt], task: None = None
    ) -> TaskResult[..., Any]: ...
    def to_task_result(
        self, history: Sequence[DBTaskAttempt], task: Task[..., Any] | None = None
    ) -> TaskResult[..., Any]:
        """Build the TaskResult this row stands for.

        ``history`` is the row's finished attempts, oldest first. The attempt
        in progress, if any, only exists on this row (``worker_id``).
        """
        task = task or self.load_task()
        stored: dict[str, Any] = {  # using()'s keyword arguments
            "priority": self.priority,
            "queue_name": self.queue_name,
            "run_after": self.run_after,
            "backend": self.backend_name,
        }
        # using() builds and validates a new Task; the worker passes in the
        # one it built for this row already, so skip it when nothing differs.
        # (using() leaves a None argument as it is: so does this test.)
        if any(
            value is not None and getattr(task, name) != value for name, value in stored.items()
        ):
            task = task.using(**stored)
        worker_ids = [attempt.worker_id for attempt in history]
        if self.status == RUNNING:
            worker_ids.append(self.worker_id)
        result: TaskResult[..., Any] = TaskResult(
            task=task,
            id=str(self.pk),
            status=self.public_status,
            enqueued_at=self.enqueued_at,
            started_at=self.started_at,
            finished_at=self.finished_at,
            last_attempted_at=self.last_attempted_at,
            args=self.args,
            kwargs=self.kwargs,
            backend=self.backend_name,
            errors=[attempt.to_task_error() for attempt in history if attempt.is_failure]
            + self.cancellation_errors(),
            worker_ids=worker_ids,
        )
        # TaskResult is frozen and takes no return value in __init__; this
        # is how Django's own backends set it.
        object.__setattr__(result, "_return_value", self.return_value)
        return result
