"""Read-only queries behind the ops dashboard, the metrics endpoint and the health check.

Each function answers one question about one ``DatabaseBackend`` with a fixed
number of queries (one, unless its docstring says otherwise), whatever the
size of the tables, and returns small frozen dataclasses. Nothing here writes.

Indexes: the queue summary, and the task side of the attempt queries, only
look at unfinished tasks and tasks finished in the last hour, which the
partial indexes ``dbtasks_unfinished_idx`` and ``dbtasks_finished_idx``
cover; the workers' in-flight counts use ``dbtasks_running_idx``. Attempts
have no index on ``stopped_at`` or ``outcome`` yet, so the throughput and
duration queries scan the attempts table, and so do the latest failures
(walking the primary key backwards) when failures are rare.
"""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC
from datetime import datetime
from datetime import timedelta

from django.conf import settings
from django.db.models import Count
from django.db.models import DurationField
from django.db.models import F
from django.db.models import IntegerField
from django.db.models import Min
from django.db.models import OuterRef
from django.db.models import Q
from django.db.models import Subquery
from django.db.models import Sum
from django.db.models.functions import Coalesce
from django.db.models.functions import TruncMinute

from dbtasks.backend import DatabaseBackend
from dbtasks.compat import InvalidTaskBackend
from dbtasks.compat import task_backends
from dbtasks.models import FAILED
from dbtasks.models import FINISHED
from dbtasks.models import READY
from dbtasks.models import RUNNING
from dbtasks.models import SUCCESSFUL
from dbtasks.models import UNFINISHED
from dbtasks.models import DBTaskAttempt
from dbtasks.models import DBTaskResult
from dbtasks.models import DBWorker

# "Recently" for failures, outcomes and durations: the dashboard's and the
# metrics' sliding window.
WINDOW = timedelta(hours=1)

# Upper bounds (seconds) of the attempt-duration histogram; +Inf is implied.
DURATION_BUCKETS: tuple[float, ...] = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


def database_backends() -> dict[str, DatabaseBackend]:
    """Every configured task backend that is a dbtasks ``DatabaseBackend``, by alias."""
    found: dict[str, DatabaseBackend] = {}
    for alias in getattr(settings, "TASKS", {}):
        try:
            backend = task_backends[alias]
        except InvalidTaskBackend:
            # A backend that cannot even be built is reported by `manage.py
            # check`; the dashboard shows the ones that work.
            continue
        if isinstance(backend, DatabaseBackend):
            found[alias] = backend
    return found


def format_duration(value: timedelta | None) -> str:
    """Say how long ``value`` is, in at most two units.

    ``<1s``, ``42s``, ``5m 3s``, ``5m``, ``2h 10m``, ``3d 4h``; ``-`` for None.
    """
    if value is None:
        return "-"
    seconds = int(value.total_seconds())
    units = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))
    for index, (suffix, size) in enumerate(units):
        if seconds >= size:
            major, rest = divmod(seconds, size)
            text = f"{major}{suffix}"
            # The next unit down, if any and not zero: "5m 3s", but "5m", not "5m 0s".
            if index + 1 < len(units):
                minor_suffix, minor_size = units[index + 1]
                if minor := rest // minor_size:
                    text += f" {minor}{minor_suffix}"
            return text
    return "<1s"


# --- Queues -----------------------------------------------------------------


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
        row = counted.get(name, {})
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


# --- Throughput -------------------------------------------------------------


def _results_active_since(since: datetime) -> Q:
    """Restrict attempts to those of tasks that can have had an attempt stop after ``since``.

    Redundant in meaning: a task with an attempt that stopped after ``since``
    is unfinished (retrying, running, or re-queued by hand), or finished at
    or after that attempt. But it lets the database find those tasks through
    the partial indexes ``dbtasks_unfinished_idx`` and ``dbtasks_finished_idx``
    instead of scanning the whole task table for the join (measured on
    Postgres with 300k tasks: bitmap index scans instead of a sequential scan).
    """
    return Q(result__status__in=UNFINISHED) | Q(
        result__status__in=FINISHED, result__finished_at__gte=since
    )


@dataclass(frozen=True, slots=True)
class MinuteCount:
    """Attempts that finished within one minute, by outcome."""

    minute: datetime  # the minute's start, UTC
    successful: int
    failed: int

    @property
    def total(self) -> int:
        return self.successful + self.failed


def throughput(backend: DatabaseBackend, *, now: datetime, minutes: int = 60) -> list[MinuteCount]:
    """Count finished attempts per minute for the last ``minutes`` minutes, oldest first.

    The last bucket is the current, partial minute. One query, grouped in
    SQL by minute and outcome, so at most ``2 * minutes`` rows come back
    however busy the hour was.
    """
    current = now.astimezone(UTC).replace(second=0, microsecond=0)
    first = current - timedelta(minutes=minutes - 1)
    grouped = (
        DBTaskAttempt.objects.using(backend.db_alias)
        .filter(result__backend_name=backend.alias, stopped_at__gte=first)
        .filter(_results_active_since(first))
        .annotate(minute=TruncMinute("stopped_at", tzinfo=UTC))
        .values("minute", "outcome")
        .annotate(count=Count("pk"))
        .order_by()
    )
    counts: dict[tuple[datetime, str], int] = {
        (row["minute"], row["outcome"]): row["count"] for row in grouped
    }
    buckets = []
    for offset in range(minutes):
        minute = first + timedelta(minutes=offset)
        buckets.append(
            MinuteCount(
                minute=minute,
                successful=counts.get((minute, SUCCESSFUL), 0),
                failed=counts.get((minute, FAILED), 0),
            )
        )
    return buckets


# --- Workers ----------------------------------------------------------------


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


# --- Failures ---------------------------------------------------------------


RETRIED = "Retried"  # a later attempt has run (or runs now)
WILL_RETRY = "Will retry"  # this was the latest attempt; the task waits for its backoff
GAVE_UP = "Gave up"  # this was the last attempt; the task is FAILED


@dataclass(frozen=True, slots=True, kw_only=True)
class FailureInfo:
    """One failed attempt, with enough of its error to recognise it."""

    attempt_id: int
    result_id: int
    task_path: str
    queue_name: str
    number: int  # which attempt of the task this was
    worker_id: str
    stopped_at: datetime
    exception_class_path: str
    message: str  # the traceback's last line, e.g. "ValueError: boom"
    then: str  # what became of the task: RETRIED, WILL_RETRY or GAVE_UP

    @property
    def gave_up(self) -> bool:
        return self.then == GAVE_UP


def last_traceback_line(traceback: str, *, limit: int = 500) -> str:
    """The last non-blank line of a traceback (where Python names the error), shortened."""
    for line in reversed(traceback.splitlines()):
        if line.strip():
            line = line.strip()
            return line if len(line) <= limit else line[: limit - 1] + "…"
    return ""


def latest_failures(backend: DatabaseBackend, *, limit: int = 10) -> list[FailureInfo]:
    """The ``limit`` most recent failed attempts of ``backend``, newest first.

    Newest means highest id: attempts are inserted as they stop, so the id
    order is the stop order, and the primary key index serves it with no
    index on ``stopped_at``.
    """
    rows = (
        DBTaskAttempt.objects.using(backend.db_alias)
        .filter(outcome=FAILED, result__backend_name=backend.alias)
        .select_related("result")
        # Arguments and return values can be large and are not shown.
        .only(
            "number",
            "worker_id",
            "stopped_at",
            "exception_class_path",
            "traceback",
            "result__task_path",
            "result__queue_name",
            "result__status",
            "result__attempt_count",
        )
        .order_by("-pk")[:limit]
    )
    return [
        FailureInfo(
            attempt_id=row.pk,
            result_id=row.result_id,
            task_path=row.result.task_path,
            queue_name=row.result.queue_name,
            number=row.number,
            worker_id=row.worker_id,
            stopped_at=row.stopped_at,
            exception_class_path=row.exception_class_path,
            message=last_traceback_line(row.traceback) or row.exception_class_path,
            then=_after_attempt(row),
        )
        for row in rows
    ]


def _after_attempt(attempt: DBTaskAttempt) -> str:
    """What became of the task after this failed attempt."""
    if attempt.number < attempt.result.attempt_count:
        return RETRIED
    if attempt.result.status in (READY, RUNNING):
        return WILL_RETRY
    return GAVE_UP


# --- Attempt outcomes and durations (metrics) -------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueAttempts:
    """The attempts of one queue that stopped within WINDOW."""

    queue_name: str
    successful: int
    failed: int
    duration_sum: timedelta
    # Cumulative counts: attempts that took at most DURATION_BUCKETS[i] seconds.
    bucket_counts: tuple[int, ...]

    @property
    def count(self) -> int:
        return self.successful + self.failed


def attempt_stats(
    backend: DatabaseBackend, *, now: datetime, window: timedelta = WINDOW
) -> list[QueueAttempts]:
    """Outcomes and duration histogram of attempts stopped within ``window``, per queue.

    One aggregate query: each histogram bucket is a conditional count.
    Queues without attempts in the window are absent.
    """
    duration_at_most = {
        f"le_{index}": Count(
            "pk", filter=Q(stopped_at__lte=F("started_at") + timedelta(seconds=bound))
        )
        for index, bound in enumerate(DURATION_BUCKETS)
    }
    rows = (
        DBTaskAttempt.objects.using(backend.db_alias)
        .filter(result__backend_name=backend.alias, stopped_at__gte=now - window)
        .filter(_results_active_since(now - window))
        .values("result__queue_name")
        .annotate(
            successful=Count("pk", filter=Q(outcome=SUCCESSFUL)),
            failed=Count("pk", filter=Q(outcome=FAILED)),
            duration_sum=Sum(F("stopped_at") - F("started_at"), output_field=DurationField()),
            **duration_at_most,
        )
        .order_by("result__queue_name")
    )
    return [
        QueueAttempts(
            queue_name=row["result__queue_name"],
            successful=row["successful"],
            failed=row["failed"],
            duration_sum=row["duration_sum"] or timedelta(0),
            bucket_counts=tuple(row[f"le_{index}"] for index in range(len(DURATION_BUCKETS))),
        )
        for row in rows
    ]


def queues_without_workers(queue_names: Sequence[str], workers: Iterable[WorkerInfo]) -> list[str]:
    """The queues in ``queue_names`` that none of ``workers`` serves."""
    served = {name for worker in workers for name in worker.queues}
    return [name for name in queue_names if name not in served]
