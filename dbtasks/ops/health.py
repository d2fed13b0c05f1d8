"""Is task processing healthy? The logic behind ``manage.py dbtasks_health``.

``check_health()`` answers with a ``HealthReport`` whose ``line()`` is one
line a container health check, a load balancer or a human can read:
``OK: 3 ready, oldest 2s, 2 workers alive`` or
``UNHEALTHY: no worker heartbeated in the last 30s``.

Unhealthy means any of: more ready tasks than ``max_ready``; the oldest ready
task waiting longer than ``max_age``; no live worker (a heartbeat within
``heartbeat_within``) serving one of the checked queues; the database not
answering. Two queries, whatever the size of the tables.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from datetime import timedelta

from django.db import DatabaseError

from dbtasks.backend import DatabaseBackend
from dbtasks.clock import database_time
from dbtasks.ops.queues import queue_summaries
from dbtasks.ops.queues import queues_without_workers
from dbtasks.ops.recent import RecentActivity
from dbtasks.ops.text import format_duration
from dbtasks.ops.workers import live_workers
from dbtasks.queues import paused_queues


@dataclass(frozen=True, slots=True, kw_only=True)
class HealthLimits:
    """What counts as unhealthy; ``None`` means "do not check"."""

    max_ready: int | None = None
    max_age: timedelta | None = None
    heartbeat_within: timedelta | None = None  # None: the backend's heartbeat_timeout


@dataclass(frozen=True, slots=True, kw_only=True)
class HealthReport:
    problems: tuple[str, ...]
    ready: int = 0
    oldest_ready_age: timedelta | None = None
    workers_alive: int = 0
    paused: tuple[str, ...] = ()  # checked queues no worker claims from (dbtasks.queues)

    @property
    def healthy(self) -> bool:
        return not self.problems

    def line(self) -> str:
        """The verdict in one line, prefixed ``OK:`` or ``UNHEALTHY:``."""
        paused = f" (paused: {', '.join(self.paused)})" if self.paused else ""
        if self.problems:
            return "UNHEALTHY: " + "; ".join(self.problems) + paused
        parts = [f"{self.ready} ready"]
        if self.oldest_ready_age is not None:
            parts.append(f"oldest {format_duration(self.oldest_ready_age)}")
        plural = "worker" if self.workers_alive == 1 else "workers"
        parts.append(f"{self.workers_alive} {plural} alive")
        return "OK: " + ", ".join(parts) + paused


def first_line(error: BaseException) -> str:
    """The first non-blank line of an error's message (drivers add hints below it)."""
    for line in str(error).splitlines():
        if line.strip():
            return line.strip()
    return type(error).__name__


def check_health(
    backend: DatabaseBackend,
    *,
    limits: HealthLimits,
    queues: Sequence[str] | None = None,
    now: datetime | None = None,
) -> HealthReport:
    """Check ``backend``'s ``queues`` (default: all it is configured with) against ``limits``."""
    queue_names = list(queues) if queues else list(backend.queues)
    within = limits.heartbeat_within or backend.config.heartbeat_timeout
    try:
        # Judged by the workers' clock (the database's), not this host's.
        now = now or database_time(backend.db_alias)
        # The verdict needs no history: skip reading the last hour's summaries.
        no_history = RecentActivity(now=now, by_minute={})
        summaries = queue_summaries(backend, now=now, recent=no_history, queues=queue_names)
        workers = live_workers(backend, now=now, within=within)
        paused = sorted(paused_queues(backend.alias, db=backend.db_alias) & set(queue_names))
    except DatabaseError as error:
        # The point of a health check: report it, in one line, never a traceback.
        return HealthReport(problems=(f"database error: {first_line(error)}",))

    ready = sum(queue.ready for queue in summaries)
    ages = [queue.oldest_ready_age for queue in summaries if queue.oldest_ready_age is not None]
    oldest = max(ages, default=None)
    serving = [worker for worker in workers if set(worker.queues) & set(queue_names)]

    problems: list[str] = []
    if limits.max_ready is not None and ready > limits.max_ready:
        tasks = "task" if ready == 1 else "tasks"
        problems.append(f"{ready} ready {tasks}, more than --max-ready {limits.max_ready}")
    if limits.max_age is not None and oldest is not None and oldest > limits.max_age:
        problems.append(
            f"oldest ready task waited {format_duration(oldest)}, "
            f"more than --max-age {format_duration(limits.max_age)}"
        )
    if not workers:
        problems.append(f"no worker heartbeated in the last {format_duration(within)}")
    elif missing := queues_without_workers(queue_names, workers):
        problems.append(f"no live worker serves queue(s) {', '.join(missing)}")
    return HealthReport(
        problems=tuple(problems),
        ready=ready,
        oldest_ready_age=oldest,
        workers_alive=len(serving),
        paused=tuple(paused),
    )
