"""What each queue holds now (waiting, running, the oldest ready task) and did lately.

The "now" part is one aggregate query over the unfinished tasks only, through
the partial index ``dbtasks_unfinished_idx``, whatever the size of the
finished history. The "last hour" part (gave up, cancelled) comes from the
per-minute summaries (``dbtasks.ops.recent``).

Waiting has three kinds: ready (may run now), scheduled (due later: run_after
or a retry's backoff; READY rows not yet due and SCHEDULED rows alike) and
blocked (waiting on other tasks). All three read as READY through Django's API.
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
from dbtasks.minutes import QueueMinute
from dbtasks.models import BLOCKED
from dbtasks.models import READY
from dbtasks.models import RUNNING
from dbtasks.models import SCHEDULED
from dbtasks.models import UNFINISHED
from dbtasks.models import DBTaskResult
from dbtasks.ops.recent import RecentActivity
from dbtasks.ops.text import format_duration

if TYPE_CHECKING:
    from dbtasks.ops.workers import WorkerInfo


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueSummary:
    """How many tasks one queue holds in each state, now."""

    name: str
    configured: bool  # False: rows left in a queue no longer in TASKS[...]["QUEUES"]
    ready: int  # waiting and due now: waiting only for a free worker
    scheduled: int  # waiting for available_after (run_after or a retry's backoff)
    blocked: int  # waiting for other tasks
    running: int
    last_hour: QueueMinute  # attempts, gave up, cancelled: the counted minutes of the hour
    oldest_ready_at: datetime | None  # when the longest-waiting ready task became available
    oldest_ready_age: timedelta | None

    @property
    def waiting(self) -> int:
        return self.ready + self.scheduled + self.blocked

    @property
    def failed_last_hour(self) -> int:
        """Tasks that ended FAILED with no retry left; cancellations are not failures."""
        return self.last_hour.gave_up

    @property
    def cancelled_last_hour(self) -> int:
        return self.last_hour.cancelled

    @property
    def oldest_ready_age_text(self) -> str:
        return format_duration(self.oldest_ready_age)


def queue_summaries(
    backend: DatabaseBackend,
    *,
    now: datetime,
    recent: RecentActivity,
    queues: Iterable[str] | None = None,
) -> list[QueueSummary]:
    """Summarise every queue of ``backend`` (or only ``queues``) in one aggregate query.

    Configured queues come first, by name, even when empty (the backend
    keeps QUEUES as a set: there is no configuration order); queues that
    still hold rows but are no longer configured follow (their tasks will
    never run, which an operator needs to see).
    """
    rows = DBTaskResult.objects.using(backend.db_alias).filter(
        backend_name=backend.alias, status__in=UNFINISHED
    )
    if queues is not None:
        queues = list(queues)
        rows = rows.filter(queue_name__in=queues)
    # A SCHEDULED row that is due is ready in all but name: the worker stages it.
    due = Q(status__in=(READY, SCHEDULED), available_after__lte=now)
    counted = {
        row["queue_name"]: row
        for row in rows.values("queue_name")
        .annotate(
            ready=Count("pk", filter=due),
            scheduled=Count("pk", filter=Q(status__in=(READY, SCHEDULED), available_after__gt=now)),
            blocked=Count("pk", filter=Q(status=BLOCKED)),
            running=Count("pk", filter=Q(status=RUNNING)),
            oldest_ready_at=Min("available_after", filter=due),
        )
        .order_by()
    }
    last_hour = recent.per_queue()
    configured = sorted(backend.queues)
    names = [name for name in configured if queues is None or name in queues]
    names += sorted(
        {*counted, *(name for name in last_hour if queues is None or name in queues)} - set(names)
    )
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
                blocked=row.get("blocked", 0),
                running=row.get("running", 0),
                last_hour=last_hour.get(name, QueueMinute()),
                oldest_ready_at=oldest,
                oldest_ready_age=max(now - oldest, timedelta(0)) if oldest else None,
            )
        )
    return summaries


def queues_without_workers(queue_names: Sequence[str], workers: Iterable[WorkerInfo]) -> list[str]:
    """The queues in ``queue_names`` that none of ``workers`` serves."""
    served = {name for worker in workers for name in worker.queues}
    return [name for name in queue_names if name not in served]
