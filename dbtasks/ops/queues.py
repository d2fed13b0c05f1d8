"""What each queue holds now: waiting, running, recent failures, the oldest ready task.

One aggregate query over the unfinished tasks and the recent failures, which
the partial indexes ``dbtasks_unfinished_idx`` and ``dbtasks_finished_idx``
cover, whatever the size of the finished history.
"""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from datetime import timedelta
from typing import TYPE_CHECKING
from typing import Any

from django.db.models import Count
from django.db.models import Min
from django.db.models import Q

from dbtasks.backend import DatabaseBackend
from dbtasks.models import FAILED
from dbtasks.models import READY
from dbtasks.models import RUNNING
from dbtasks.models import UNFINISHED
from dbtasks.models import DBTaskResult
from dbtasks.ops.text import format_duration
from dbtasks.ops.window import WINDOW

if TYPE_CHECKING:
    from dbtasks.ops.workers import WorkerInfo


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueSummary:
    """How many tasks one queue holds in each state, now."""

    name: str
    configured: bool  # False: rows left in a queue no longer in TASKS[...]["QUEUES"]
    ready: int  # READY and available now: waiting only for a free worker
    scheduled: int  # READY but not before available_after (run_after or a retry backoff)
    running: int
    failed_last_hour: int  # tasks that ended FAILED (gave up) within WINDOW
    oldest_ready_at: datetime | None  # when the longest-waiting ready task became available
    oldest_ready_age: timedelta | None

    @property
    def oldest_ready_age_text(self) -> str:
        return format_duration(self.oldest_ready_age)


def queue_summaries(
    backend: DatabaseBackend, *, now: datetime, queues: Iterable[str] | None = None
) -> list[QueueSummary]:
    """Summarise every queue of ``backend`` (or only ``queues``) in one aggregate query.

    Configured queues come first, by name, even when empty (the backend
    keeps QUEUES as a set: there is no configuration order); queues that
    still hold rows but are no longer configured follow (their tasks will
    never run, which an operator needs to see).
    """
    hour_ago = now - WINDOW
    rows = (
        DBTaskResult.objects.using(backend.db_alias)
        .filter(backend_name=backend.alias)
        # Only rows that can count: the unfinished ones and the recent
        # failures, not the (much larger) history of finished rows. Each side
        # of the OR matches one partial index.
        .filter(Q(status__in=UNFINISHED) | Q(status=FAILED, finished_at__gte=hour_ago))
    )
    if queues is not None:
        queues = list(queues)
        rows = rows.filter(queue_name__in=queues)
    ready_now = Q(status=READY, available_after__lte=now)
    counted = {
        row["queue_name"]: row
        for row in rows.values("queue_name")
        .annotate(
            ready=Count("pk", filter=ready_now),
            scheduled=Count("pk", filter=Q(status=READY, available_after__gt=now)),
            running=Count("pk", filter=Q(status=RUNNING)),
            failed_last_hour=Count("pk", filter=Q(status=FAILED, finished_at__gte=hour_ago)),
            oldest_ready_at=Min("available_after", filter=ready_now),
        )
        .order_by()
    }
    configured = sorted(backend.queues)
    names = [name for name in configured if queues is None or name in queues]
    names += sorted(set(counted) - set(names))
    summaries = []
    for name in names:
        row: Mapping[str, Any] = counted.get(name, {})
        oldest = row.get("oldest_ready_at")
        summaries.append(
            QueueSummary(
                name=name,
                configured=name in configured,
                ready=row.get("ready", 0),
                scheduled=row.get("scheduled", 0),
                running=row.get("running", 0),
                failed_last_hour=row.get("failed_last_hour", 0),
                oldest_ready_at=oldest,
                oldest_ready_age=max(now - oldest, timedelta(0)) if oldest else None,
            )
        )
    return summaries


def queues_without_workers(queue_names: Sequence[str], workers: Iterable[WorkerInfo]) -> list[str]:
    """The queues in ``queue_names`` that none of ``workers`` serves."""
    served = {name for worker in workers for name in worker.queues}
    return [name for name in queue_names if name not in served]
