"""Who is working: live workers with their in-flight counts, and the tasks running now."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from datetime import timedelta

from django.db.models import Count
from django.db.models import IntegerField
from django.db.models import OuterRef
from django.db.models import Subquery
from django.db.models.functions import Coalesce

from dbtasks.backend import DatabaseBackend
from dbtasks.models import RUNNING
from dbtasks.models import DBTaskResult
from dbtasks.models import DBWorker
from dbtasks.ops.text import format_duration


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerInfo:
    """A worker whose heartbeat is recent enough to call it alive."""

    worker_id: str
    hostname: str
    pid: int
    queues: tuple[str, ...]
    threads: int
    started_at: datetime
    heartbeat_at: datetime
    heartbeat_age: timedelta
    in_flight: int  # RUNNING tasks claimed by this worker

    @property
    def heartbeat_age_text(self) -> str:
        return format_duration(self.heartbeat_age)

    @property
    def queues_text(self) -> str:
        return ", ".join(self.queues)


def live_workers(
    backend: DatabaseBackend, *, now: datetime, within: timedelta | None = None, limit: int = 200
) -> list[WorkerInfo]:
    """Workers of ``backend`` that heartbeated within ``within`` (default: its heartbeat timeout).

    One query: each worker's in-flight count is a correlated subquery on
    ``dbtasks_running_idx``. At most ``limit`` workers, by worker id.
    """
    within = backend.config.heartbeat_timeout if within is None else within
    in_flight = (
        DBTaskResult.objects.filter(status=RUNNING, worker_id=OuterRef("worker_id"))
        .order_by()
        .values("worker_id")
        .annotate(count=Count("pk"))
        .values("count")
    )
    rows = (
        DBWorker.objects.using(backend.db_alias)
        .filter(backend_name=backend.alias, heartbeat_at__gte=now - within)
        .annotate(in_flight=Coalesce(Subquery(in_flight, output_field=IntegerField()), 0))
        .order_by("worker_id")[:limit]
    )
    return [
        WorkerInfo(
            worker_id=row.worker_id,
            hostname=row.hostname,
            pid=row.pid,
            queues=tuple(str(name) for name in row.queues or ()),
            threads=row.threads,
            started_at=row.started_at,
            heartbeat_at=row.heartbeat_at,
            heartbeat_age=max(now - row.heartbeat_at, timedelta(0)),
            in_flight=row.in_flight,
        )
        for row in rows
    ]


def count_live_workers(
    backend: DatabaseBackend, *, now: datetime, within: timedelta | None = None
) -> int:
    """How many workers of ``backend`` heartbeated within ``within`` (one COUNT query)."""
    within = backend.config.heartbeat_timeout if within is None else within
    return (
        DBWorker.objects.using(backend.db_alias)
        .filter(backend_name=backend.alias, heartbeat_at__gte=now - within)
        .count()
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class RunningTask:
    """A task some worker is running now."""

    id: int
    task_path: str
    queue_name: str
    worker_id: str
    attempt: int
    running_for: timedelta

    @property
    def running_for_text(self) -> str:
        return format_duration(self.running_for)


def running_tasks(
    backend: DatabaseBackend, *, now: datetime, limit: int = 100
) -> list[RunningTask]:
    """The RUNNING tasks of ``backend``, longest-running first, at most ``limit``."""
    rows = (
        DBTaskResult.objects.using(backend.db_alias)
        .filter(backend_name=backend.alias, status=RUNNING)
        .order_by("last_attempted_at", "pk")
        .values_list(
            "pk", "task_path", "queue_name", "worker_id", "attempt_count", "last_attempted_at"
        )[:limit]
    )
    return [
        RunningTask(
            id=pk,
            task_path=task_path,
            queue_name=queue_name,
            worker_id=worker_id,
            attempt=attempt,
            running_for=max(now - (started or now), timedelta(0)),
        )
        for pk, task_path, queue_name, worker_id, attempt, started in rows
    ]
