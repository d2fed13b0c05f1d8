"""dbtasks' tables, one module each; import them from here.

- ``results.py``: ``DBTaskResult``, one row per enqueued task (its QuerySet
  in ``queries.py``, the statuses in ``states.py``, the indexes in
  ``indexes.py``).
- ``attempts.py``: ``DBTaskAttempt``, one row per finished run.
- ``workers.py``: ``DBWorker``, one row per live worker with its heartbeat;
  a RUNNING task whose worker stopped heartbeating is closed as ``WorkerLost``.
- ``schedules.py``: ``DBScheduleTick``, the recurring ticks already enqueued.
- ``controls.py``: paused queues, concurrency slots and rate-limit buckets.
- Elsewhere, beside the code that uses them: ``DBMinuteSummary``
  (``dbtasks/minutes.py``, per-minute counts for the dashboard and the
  metrics) and the workflow tables (``dbtasks/workflows/models.py``);
  imported here so Django registers them with this app.
"""

from __future__ import annotations

from dbtasks.minutes import DBMinuteSummary
from dbtasks.models.attempts import DBTaskAttempt
from dbtasks.models.controls import DBPausedQueue
from dbtasks.models.controls import DBRateBucket
from dbtasks.models.controls import DBSemaphore
from dbtasks.models.queries import DBTaskResultQuerySet
from dbtasks.models.results import DBTaskResult
from dbtasks.models.schedules import DBScheduleTick
from dbtasks.models.states import BLOCKED
from dbtasks.models.states import CANCELLED_TASKS
from dbtasks.models.states import FAILED
from dbtasks.models.states import FINISHED
from dbtasks.models.states import MAX_LENGTH_WORKER_ID
from dbtasks.models.states import READY
from dbtasks.models.states import RUNNING
from dbtasks.models.states import SCHEDULED
from dbtasks.models.states import STATUS_CHOICES
from dbtasks.models.states import SUCCESSFUL
from dbtasks.models.states import UNFINISHED
from dbtasks.models.states import WAITING
from dbtasks.models.states import waiting_status
from dbtasks.models.workers import DBWorker
from dbtasks.workflows.models import DBWorkflow
from dbtasks.workflows.models import DBWorkflowMember

__all__ = [
    "BLOCKED",
    "CANCELLED_TASKS",
    "FAILED",
    "FINISHED",
    "MAX_LENGTH_WORKER_ID",
    "READY",
    "RUNNING",
    "SCHEDULED",
    "STATUS_CHOICES",
    "SUCCESSFUL",
    "UNFINISHED",
    "WAITING",
    "DBMinuteSummary",
    "DBPausedQueue",
    "DBRateBucket",
    "DBScheduleTick",
    "DBSemaphore",
    "DBTaskAttempt",
    "DBTaskResult",
    "DBTaskResultQuerySet",
    "DBWorker",
    "DBWorkflow",
    "DBWorkflowMember",
    "waiting_status",
]
