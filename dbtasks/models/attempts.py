"""One finished run of a task: ``TaskResult.errors`` and ``worker_ids`` come from these."""

from __future__ import annotations

from django.db import models

from dbtasks.compat import TaskError
from dbtasks.models.results import DBTaskResult
from dbtasks.models.states import FAILED
from dbtasks.models.states import MAX_LENGTH_WORKER_ID
from dbtasks.models.states import SUCCESSFUL


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
