"""Step 3 of the tour: the tables behind the backend.

- ``DBTaskResult``: one row per enqueued task. It carries what Django's
  ``TaskResult`` needs, plus ``available_after`` (when it may run next) and
  ``worker_id`` (who runs it now).
- ``DBTaskAttempt``: one row per finished run, successful or not, with the
  exception and traceback. ``TaskResult.errors``, ``worker_ids`` and so
  ``attempts`` are built from these.
- ``DBWorker``: one row per live worker process, with its heartbeat. A
  RUNNING task whose worker stopped heartbeating is closed as ``WorkerLost``.
- ``DBMinuteSummary`` (in ``dbtasks/minutes.py``): per-minute counts for the
  dashboard and the metrics, written by the workers.

``DBTaskResult.to_task_result()`` is the only place a ``TaskResult`` is built.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from typing import overload

from django.core.exceptions import SuspiciousOperation
from django.db import models
from django.db import transaction
from django.utils.module_loading import import_string

from dbtasks.compat import Task
from dbtasks.compat import TaskError
from dbtasks.compat import TaskResult
from dbtasks.compat import TaskResultStatus
from dbtasks.exceptions import TaskArgumentsCorrupt
from dbtasks.exceptions import TaskFunctionMissing

READY = TaskResultStatus.READY
RUNNING = TaskResultStatus.RUNNING
SUCCESSFUL = TaskResultStatus.SUCCESSFUL
FAILED = TaskResultStatus.FAILED
# dbtasks' own states beside Django's four. Both read as READY through the
# public API (``TaskResult.status``), and neither is claimable: only READY
# rows are, which keeps the claim's index small.
SCHEDULED = "SCHEDULED"  # due later (run_after, a retry's backoff); staged to READY when due
BLOCKED = "BLOCKED"  # waits on other tasks (a workflow) or a limit; released by them
WAITING = (READY, SCHEDULED, BLOCKED)  # neither started nor finished
FINISHED = (SUCCESSFUL, FAILED)
UNFINISHED = (*WAITING, RUNNING)

# Cancelled tasks, before they ran or stopped while running (FAILED, but no failure).
CANCELLED_TASKS = models.Q(cancelled_at__isnull=False) | models.Q(
    status=FAILED, cancel_requested_at__isnull=False
)


def waiting_status(available_after: datetime, now: datetime) -> str:
    """READY if a row may run at ``available_after`` already, else SCHEDULED until then."""
    return SCHEDULED if available_after > now else READY


STATUS_CHOICES = [
    *TaskResultStatus.choices,
    (SCHEDULED, "Scheduled"),
    (BLOCKED, "Blocked"),
]

MAX_LENGTH_WORKER_ID = 200


class DBTaskResultQuerySet(models.QuerySet["DBTaskResult"]):
    def ready(self, now: datetime) -> DBTaskResultQuerySet:
        """Rows a worker may claim now, in the order it claims them."""
        return self.filter(status=READY, available_after__lte=now).order_by(
            "-priority", "available_after", "id"
        )

    def finished(self) -> DBTaskResultQuerySet:
        return self.filter(status__in=FINISHED)

    def unfinished(self) -> DBTaskResultQuerySet:
        return self.filter(status__in=UNFINISHED)

    def finished_before(self, cutoff: datetime) -> DBTaskResultQuerySet:
        """Finished rows old enough to purge (uses dbtasks_finished_idx)."""
        return self.finished().filter(finished_at__lt=cutoff)

    def requeue_failed(self, now: datetime) -> int:
        """Make FAILED rows READY to run now; each gets one more attempt. Return how many.

        A unique task whose key has an unfinished task again is left FAILED:
        the unique key allows one at a time. A task with a concurrency limit
        goes BLOCKED and gets a slot like any other (dbtasks.sql.semaphores).
        """
        from dbtasks.sql import semaphores

        taken = DBTaskResult.objects.filter(status__in=UNFINISHED).exclude(unique_key="")
        failed = self.filter(status=FAILED).exclude(
            ~models.Q(unique_key=""), unique_key__in=taken.values("unique_key")
        )
        again = {
            "available_after": now,
            "finished_at": None,
            "cancelled_at": None,
            "cancel_requested_at": None,
            "worker_id": "",
        }
        with transaction.atomic(using=self.db):
            limited = failed.exclude(concurrency_key="")
            keys: dict[str, set[str]] = {}
            for backend_name, key in limited.values_list("backend_name", "concurrency_key"):
                keys.setdefault(backend_name, set()).add(key)
            requeued = limited.update(status=BLOCKED, **again)
            requeued += failed.filter(concurrency_key="").update(status=READY, **again)
            for backend_name, names in keys.items():
                semaphores.give_back(self.db, backend_name, names, now)
            return requeued

    def cancel_ready(self, now: datetime) -> int:
        """Cancel rows that have not started: FAILED at once, never run. Return how many.

        Only waiting rows change, in one guarded UPDATE: a row a worker has
        claimed (RUNNING) is not cancelled, and a cancelled row is never
        claimed. A cancelled workflow member counts as finished for the
        members waiting on it, in the same transaction.
        """
        from dbtasks.sql import semaphores
        from dbtasks.workflows.release import cancel_members

        with transaction.atomic(using=self.db):
            # Rows with a concurrency limit give their slots back, in the same transaction.
            limited = self.filter(status__in=WAITING).exclude(concurrency_key="")
            keys: dict[str, set[str]] = {}
            for backend_name, key in limited.values_list("backend_name", "concurrency_key"):
                keys.setdefault(backend_name, set()).add(key)
            for backend_name, names in keys.items():
                semaphores.lock(self.db, backend_name, names)
            members = cancel_members(self.filter(status__in=WAITING, in_workflow=True), now)
            cancelled = self.filter(status__in=WAITING).update(
                status=FAILED, finished_at=now, cancelled_at=now, worker_id=""
            )
            for backend_name, names in keys.items():
                semaphores.give_back(self.db, backend_name, names, now)
            return members + cancelled

    def request_cancel(self, now: datetime) -> int:
        """Ask the workers running these RUNNING rows to stop them. Return how many.

        The first request counts: asking again keeps its time.
        """
        return self.filter(status=RUNNING, cancel_requested_at__isnull=True).update(
            cancel_requested_at=now
        )

    def unfinished_before(self, cutoff: datetime) -> DBTaskResultQuerySet:
        """Rows never finished and enqueued before ``cutoff`` (uses dbtasks_unfinished_idx)."""
        return self.unfinished().filter(enqueued_at__lt=cutoff)


class DBTaskResult(models.Model):
    """One enqueued task and where it is in its life."""

    task_path = models.CharField(max_length=255)
    backend_name = models.CharField(max_length=100)
    queue_name = models.CharField(max_length=100)
    priority = models.SmallIntegerField(default=0)
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

    # When the task may run next: run_after, or after a failure the backoff.
    available_after = models.DateTimeField()
    # Runs started so far, the current one included.
    attempt_count = models.PositiveIntegerField(default=0)
    # The worker running it now; empty unless RUNNING.
    worker_id = models.CharField(max_length=MAX_LENGTH_WORKER_ID, blank=True)

    objects = DBTaskResultQuerySet.as_manager()

    class Meta:
        verbose_name = "task"
        indexes = [
            # The claim: one index range per queue, READY rows in the order
            # they are claimed. Partial, so the rows a claim does not take
            # (finished, running, scheduled for later, blocked) are not in it,
            # and the queue comes first, so other queues' backlogs are not
            # walked either. available_after orders a priority's rows oldest
            # first (READY rows are due: staging put them there when due).
            models.Index(
                fields=["backend_name", "queue_name", "-priority", "available_after", "id"],
                condition=models.Q(status=READY),
                name="dbtasks_ready_idx",
            ),
            # Staging: the SCHEDULED rows that are due, soonest first.
            models.Index(
                fields=["available_after"],
                condition=models.Q(status=SCHEDULED),
                name="dbtasks_scheduled_idx",
            ),
            # Lost-worker recovery looks up RUNNING rows by worker.
            models.Index(
                fields=["worker_id"],
                condition=models.Q(status=RUNNING),
                name="dbtasks_running_idx",
            ),
            # The two purge queries.
            models.Index(
                fields=["finished_at"],
                condition=models.Q(status__in=FINISHED),
                name="dbtasks_finished_idx",
            ),
            models.Index(
                fields=["enqueued_at"],
                condition=models.Q(status__in=UNFINISHED),
                name="dbtasks_unfinished_idx",
            ),
            # Cancellations (few): counted per minute, listed and filtered by the ops side.
            models.Index(
                fields=["cancelled_at"],
                condition=models.Q(cancelled_at__isnull=False),
                name="dbtasks_cancelled_idx",
            ),
            models.Index(
                fields=["cancel_requested_at"],
                condition=models.Q(cancel_requested_at__isnull=False),
                name="dbtasks_cancel_requested_idx",
            ),
            # Concurrency limits: counting a key's slot holders, finding its BLOCKED rows.
            models.Index(
                fields=["backend_name", "concurrency_key", "status"],
                condition=~models.Q(concurrency_key=""),
                name="dbtasks_concurrency_idx",
            ),
        ]
        constraints = [
            # Unique tasks: the database, not a read before the write, keeps a
            # second unfinished row with the same key out (enqueue_unique).
            models.UniqueConstraint(
                fields=["backend_name", "unique_key"],
                condition=models.Q(status__in=UNFINISHED) & ~models.Q(unique_key=""),
                name="dbtasks_unique_unfinished",
            ),
        ]

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


class DBTaskAttempt(models.Model):
    """One finished run of a task: who ran it, when, and how it ended."""

    class Outcome(models.TextChoices):
        SUCCESSFUL = SUCCESSFUL.value, SUCCESSFUL.label
        FAILED = FAILED.value, FAILED.label

    result = models.ForeignKey(DBTaskResult, related_name="attempts", on_delete=models.CASCADE)
    number = models.PositiveIntegerField()
    worker_id = models.CharField(max_length=MAX_LENGTH_WORKER_ID)
    started_at = models.DateTimeField()
    stopped_at = models.DateTimeField()
    outcome = models.CharField(max_length=10, choices=Outcome.choices)
    exception_class_path = models.TextField(blank=True)
    traceback = models.TextField(blank=True)

    class Meta:
        verbose_name = "attempt"
        ordering = ["result", "number"]
        indexes = [
            # The dashboard's and metrics' "last hour" of attempts.
            models.Index(fields=["stopped_at"], name="dbtasks_attempt_stopped_idx"),
            # The latest failures, found without walking every success.
            models.Index(
                fields=["id"],
                condition=models.Q(outcome=FAILED),
                name="dbtasks_attempt_failed_idx",
            ),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["result", "number"], name="dbtasks_attempt_number_unique"
            )
        ]

    def __str__(self) -> str:
        return f"attempt {self.number} of task {self.result_id} ({self.outcome})"

    @property
    def is_failure(self) -> bool:
        return self.outcome == self.Outcome.FAILED

    @property
    def duration_seconds(self) -> float:
        return (self.stopped_at - self.started_at).total_seconds()

    def to_task_error(self) -> TaskError:
        return TaskError(exception_class_path=self.exception_class_path, traceback=self.traceback)


class DBWorker(models.Model):
    """A live worker process; ``heartbeat_at`` proves it is still there."""

    worker_id = models.CharField(max_length=MAX_LENGTH_WORKER_ID, unique=True)
    backend_name = models.CharField(max_length=100)
    hostname = models.CharField(max_length=255)
    pid = models.PositiveIntegerField()
    queues = models.JSONField(default=list)
    threads = models.PositiveSmallIntegerField(default=1)
    started_at = models.DateTimeField()
    heartbeat_at = models.DateTimeField(db_index=True)

    class Meta:
        verbose_name = "worker"

    def __str__(self) -> str:
        return self.worker_id


class DBScheduleTick(models.Model):
    """One tick of a recurring schedule that has been enqueued (at most once)."""

    schedule = models.CharField(max_length=100)
    tick_at = models.DateTimeField()
    result_id = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "schedule tick"
        constraints = [
            models.UniqueConstraint(fields=["schedule", "tick_at"], name="dbtasks_tick_unique")
        ]

    def __str__(self) -> str:
        return f"{self.schedule} @ {self.tick_at.isoformat()}"


# Workflow tables and the per-minute summaries live with the code that uses
# them; imported here so Django registers them with this app.
from dbtasks.minutes import DBMinuteSummary  # noqa: E402, F401
from dbtasks.workflows.models import DBWorkflow  # noqa: E402, F401
from dbtasks.workflows.models import DBWorkflowMember  # noqa: E402, F401


class DBPausedQueue(models.Model):
    """A queue no worker claims from until it is resumed (``dbtasks.queues``)."""

    backend_name = models.CharField(max_length=100, default="default")
    queue_name = models.CharField(max_length=100)
    paused_at = models.DateTimeField()

    class Meta:
        verbose_name = "paused queue"
        constraints = [
            models.UniqueConstraint(
                fields=["backend_name", "queue_name"], name="dbtasks_paused_queue_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.queue_name} (paused)"


class DBSemaphore(models.Model):
    """A concurrency key's slots: at most ``limit`` of its tasks READY or RUNNING.

    ``in_use`` is kept in step with the rows holding a slot in the same
    transactions that change them (``dbtasks.sql.semaphores``), and recounted
    by every worker's maintenance, so a crash cannot leak a slot for ever.
    """

    backend_name = models.CharField(max_length=100, default="default")
    key = models.CharField(max_length=255)
    limit = models.PositiveIntegerField()
    in_use = models.PositiveIntegerField(default=0)

    class Meta:
        verbose_name = "concurrency limit"
        constraints = [
            models.UniqueConstraint(fields=["backend_name", "key"], name="dbtasks_semaphore_unique")
        ]

    def __str__(self) -> str:
        return f"{self.key}: {self.in_use}/{self.limit}"
