"""What happened in the last hour: the per-minute summaries, read and summed.

The workers count each minute once it has ended (``dbtasks.worker.summaries``);
this reads the last hour of those rows, one small query however busy the
hour was, and sums them per minute (the dashboard's chart) and per queue
(the queue table's "gave up" and "cancelled", the metrics' outcomes and
duration histogram).

So these numbers lag: they stop at the last counted minute (``counted_until``),
about ten seconds after a minute ends while a worker runs, and stand still
when none does.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from dbtasks.backend import DatabaseBackend
from dbtasks.minutes import HISTORY
from dbtasks.minutes import MINUTE
from dbtasks.minutes import DBMinuteSummary
from dbtasks.minutes import QueueMinute
from dbtasks.minutes import minute_of


@dataclass(frozen=True, slots=True)
class MinuteCount:
    """Attempts that finished within one minute, by outcome."""

    minute: datetime  # the minute's start, UTC
    successful: int
    failed: int
    counted: bool = True  # False: not summarised (yet): the minute is running or just ended

    @property
    def total(self) -> int:
        return self.successful + self.failed


@dataclass(frozen=True, slots=True, kw_only=True)
class RecentActivity:
    """The summaries of one backend's last hour, as read at ``now``."""

    now: datetime
    by_minute: dict[datetime, dict[str, QueueMinute]]

    @property
    def counted_until(self) -> datetime | None:
        """The end of the last counted minute, or None when none of the hour is."""
        return max(self.by_minute) + MINUTE if self.by_minute else None

    def per_queue(self) -> dict[str, QueueMinute]:
        """Each queue's counts summed over the hour; queues with nothing counted are absent."""
        totals: dict[str, QueueMinute] = {}
        for queues in self.by_minute.values():
            for name, counts in queues.items():
                totals[name] = totals.get(name, QueueMinute()) + counts
        return totals

    def per_minute(self, minutes: int = 60) -> list[MinuteCount]:
        """Attempts per minute for the last ``minutes`` minutes, the current one last."""
        current = minute_of(self.now)
        counts = []
        for offset in range(minutes - 1, -1, -1):
            minute = current - offset * MINUTE
            queues = self.by_minute.get(minute)
            counts.append(
                MinuteCount(
                    minute=minute,
                    successful=sum(queue.successful for queue in (queues or {}).values()),
                    failed=sum(queue.failed for queue in (queues or {}).values()),
                    counted=queues is not None,
                )
            )
        return counts


def recent_activity(backend: DatabaseBackend, *, now: datetime) -> RecentActivity:
    """Read the summaries of ``backend``'s last hour (one query, at most 60 rows)."""
    first = minute_of(now) - HISTORY + MINUTE
    rows = DBMinuteSummary.objects.using(backend.db_alias).filter(
        backend_name=backend.alias, minute__gte=first, minute__lte=now
    )
    return RecentActivity(now=now, by_minute={row.minute: row.queue_minutes() for row in rows})
