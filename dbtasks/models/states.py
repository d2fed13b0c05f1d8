"""Where a task is in its life: Django's four statuses and dbtasks' own two."""

from __future__ import annotations

from datetime import datetime

from django.db import models

from dbtasks.compat import TaskResultStatus

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
