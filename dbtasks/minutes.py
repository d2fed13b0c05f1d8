"""Per-minute summaries of what each backend's tasks did: the ops side's history.

Counting an hour of attempts on every dashboard refresh or metrics scrape
costs seconds on a busy system (a million attempts an hour). Instead, once a
minute has ended, one worker counts it once (``dbtasks.worker.summaries``)
and stores the counts here: one small row per backend and minute, with each
queue's outcomes and duration histogram. The read side sums at most an
hour of these rows (``dbtasks.ops.recent``).

``DBMinuteSummary`` is a model of the dbtasks app (``dbtasks.models`` imports
it); it lives in its own module to keep ``models.py`` about the task rows.
"""

from __future__ import annotations

from dataclasses import asdict
from dataclasses import dataclass
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from typing import Any

from django.db import models

from dbtasks.exceptions import TaskCancelled

# The exception class path of a run stopped by a cancellation: not a failure.
CANCELLATION_PATH = f"{TaskCancelled.__module__}.{TaskCancelled.__qualname__}"

MINUTE = timedelta(minutes=1)
# How far back the read side looks ("last hour"), and so how far back minutes are counted.
HISTORY = timedelta(hours=1)

# Upper bounds (seconds) of the attempt-duration histogram; +Inf is implied.
DURATION_BUCKETS: tuple[float, ...] = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


def minute_of(moment: datetime) -> datetime:
    """The start of the UTC minute ``moment`` falls in."""
    return moment.astimezone(UTC).replace(second=0, microsecond=0)


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueMinute:
    """What one queue's tasks did in one minute (or, summed, over several)."""

    successful: int = 0  # attempts that succeeded
    failed: int = 0  # attempts that failed (retried or not); runs stopped by a cancel are not
    gave_up: int = 0  # tasks that ended FAILED with this attempt: no retry left
    cancelled: int = 0  # tasks cancelled, before or while running (never a failure)
    duration_sum: float = 0.0  # seconds, over all attempts
    # Cumulative: attempts that took at most DURATION_BUCKETS[i] seconds.
    buckets: tuple[int, ...] = (0,) * len(DURATION_BUCKETS)

    @property
    def attempts(self) -> int:
        return self.successful + self.failed

    def __add__(self, other: QueueMinute) -> QueueMinute:
        return QueueMinute(
            successful=self.successful + other.successful,
            failed=self.failed + other.failed,
            gave_up=self.gave_up + other.gave_up,
            cancelled=self.cancelled + other.cancelled,
            duration_sum=self.duration_sum + other.duration_sum,
            buckets=tuple(a + b for a, b in zip(self.buckets, other.buckets, strict=True)),
        )

    def to_json(self) -> dict[str, Any]:
        return asdict(self) | {"buckets": list(self.buckets)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> QueueMinute:
        buckets = tuple(int(count) for count in data.get("buckets", ()))
        if len(buckets) != len(DURATION_BUCKETS):
            # Written with other bucket bounds: the counts cannot be placed.
            buckets = (0,) * len(DURATION_BUCKETS)
        return cls(
            successful=int(data.get("successful", 0)),
            failed=int(data.get("failed", 0)),
            gave_up=int(data.get("gave_up", 0)),
            cancelled=int(data.get("cancelled", 0)),
            duration_sum=float(data.get("duration_sum", 0.0)),
            buckets=buckets,
        )


class DBMinuteSummary(models.Model):
    """One backend's attempts and outcomes in one minute, by queue; written once."""

    backend_name = models.CharField(max_length=100)
    minute = models.DateTimeField()  # the minute's start, UTC
    # {queue name: QueueMinute.to_json()}; queues with nothing to count are left out.
    queues = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        app_label = "dbtasks"
        verbose_name = "minute summary"
        constraints = [
            # Whoever summarises a minute first wins; the others' INSERT fails.
            models.UniqueConstraint(fields=["backend_name", "minute"], name="dbtasks_minute_unique")
        ]

    def __str__(self) -> str:
        return f"{self.backend_name} @ {self.minute.isoformat()}"

    def queue_minutes(self) -> dict[str, QueueMinute]:
        stored = self.queues if isinstance(self.queues, dict) else {}
        return {
            str(name): QueueMinute.from_json(counts)
            for name, counts in stored.items()
            if isinstance(counts, dict)
        }
