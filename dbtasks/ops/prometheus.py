"""Metrics in the Prometheus text exposition format (version 0.0.4).

``collect()`` reads the numbers (four queries per dbtasks backend, from
``dbtasks.ops.queues``, ``recent``, ``workers`` and ``dbtasks.queues``); ``render()`` writes them
out. The tables are the source of truth, so every metric is a gauge over the
current state or over the last hour, never a process-local counter: any web
process answers the same, and a restart loses nothing. The last hour's
figures come from the per-minute summaries the workers write once a minute
has ended, so they lag the present by up to a minute and some seconds.

The duration histogram is one too: its buckets count the attempts of the
last hour, so they can go down. Read it directly, e.g.
``histogram_quantile(0.95, sum by (le) (dbtasks_attempt_duration_seconds_bucket))``,
not through ``rate()``, which would take each decrease for a counter reset.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from datetime import datetime
from typing import Literal

from dbtasks.backend import DatabaseBackend
from dbtasks.clock import database_time
from dbtasks.minutes import DURATION_BUCKETS
from dbtasks.minutes import QueueMinute
from dbtasks.ops.queues import queue_summaries
from dbtasks.ops.recent import recent_activity
from dbtasks.ops.workers import count_live_workers
from dbtasks.queues import paused_queues

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_NAME_RE = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")

Labels = tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class Sample:
    """One line of output: ``<family name><suffix>{labels} value``."""

    labels: Labels
    value: float
    suffix: str = ""  # "_bucket", "_sum" or "_count" for histograms


@dataclass(slots=True)
class MetricFamily:
    """A metric's HELP and TYPE lines and its samples."""

    name: str
    type: Literal["gauge", "counter", "histogram"]
    help: str
    samples: list[Sample] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not _NAME_RE.match(self.name):
            raise ValueError(f"Invalid metric name {self.name!r}.")

    def add(self, value: float, suffix: str = "", **labels: str) -> None:
        for name in labels:
            if not _LABEL_RE.match(name) or name.startswith("__"):
                raise ValueError(f"Invalid label name {name!r}.")
        self.samples.append(Sample(tuple(labels.items()), value, suffix))


def escape_label_value(value: str) -> str:
    r"""Escape a label value: backslash, double quote and line feed become \\, \" and \n."""
    return value.replace("\\", r"\\").replace('"', r"\"").replace("\n", r"\n")


def escape_help(text: str) -> str:
    r"""Escape HELP text: backslash and line feed become \\ and \n (quotes stay)."""
    return text.replace("\\", r"\\").replace("\n", r"\n")


def format_value(value: float) -> str:
    """Write a sample value as Prometheus parses it: ``3``, ``0.25``, ``+Inf``, ``NaN``."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if float(value).is_integer() and abs(value) < 2**53:
        return str(int(value))
    return repr(float(value))


def format_bound(bound: float) -> str:
    """Write a bucket's ``le`` as the official Python client does: ``0.5``, ``1.0``, ``+Inf``."""
    return "+Inf" if math.isinf(bound) else repr(float(bound))


def render(families: Iterable[MetricFamily]) -> str:
    """The exposition text of ``families``: HELP, TYPE, then one line per sample."""
    lines: list[str] = []
    for family in families:
        lines.append(f"# HELP {family.name} {escape_help(family.help)}")
        lines.append(f"# TYPE {family.name} {family.type}")
        for sample in family.samples:
            labels = ",".join(
                f'{name}="{escape_label_value(value)}"' for name, value in sample.labels
            )
            braces = f"{{{labels}}}" if labels else ""
            lines.append(f"{family.name}{sample.suffix}{braces} {format_value(sample.value)}")
    return "\n".join(lines) + "\n"


def collect(
    backends: Mapping[str, DatabaseBackend], *, now: datetime | None = None
) -> list[MetricFamily]:
    """Read the metrics of every backend in ``backends``: four queries each.

    Ages and "alive" are measured at ``now``: by default each backend's
    database clock (one more query on Postgres), the one workers keep, never
    this host's.
    """
    tasks = MetricFamily(
        "dbtasks_tasks",
        "gauge",
        "Unfinished tasks by state: ready (may run now), scheduled (waiting for "
        "run_after or a retry backoff), blocked (waiting for other tasks), running.",
    )
    failed = MetricFamily(
        "dbtasks_tasks_failed_last_hour",
        "gauge",
        "Tasks that ended FAILED (no attempt left) in the last counted hour; "
        "cancellations are not counted.",
    )
    cancelled = MetricFamily(
        "dbtasks_tasks_cancelled_last_hour",
        "gauge",
        "Tasks cancelled in the last counted hour.",
    )
    oldest = MetricFamily(
        "dbtasks_oldest_ready_age_seconds",
        "gauge",
        "How long the longest-waiting ready task has been ready to run (0 if none).",
    )
    workers = MetricFamily(
        "dbtasks_workers",
        "gauge",
        "Workers that heartbeated within the backend's heartbeat_timeout.",
    )
    attempts = MetricFamily(
        "dbtasks_attempts_last_hour",
        "gauge",
        "Attempts that finished in the last counted hour, by outcome.",
    )
    durations = MetricFamily(
        "dbtasks_attempt_duration_seconds",
        "histogram",
        "Duration of the attempts that finished in the last hour (a sliding window: "
        "use histogram_quantile on the buckets directly, not on rate()).",
    )
    paused_family = MetricFamily(
        "dbtasks_queue_paused",
        "gauge",
        "1 while the queue is paused (workers claim none of its tasks), else 0.",
    )
    for alias, backend in backends.items():
        at = now or database_time(backend.db_alias)
        recent = recent_activity(backend, now=at)
        summaries = queue_summaries(backend, now=at, recent=recent)
        paused = paused_queues(alias, db=backend.db_alias)
        for queue in summaries:
            paused_family.add(int(queue.name in paused), backend=alias, queue=queue.name)
        for queue in summaries:
            labels = {"backend": alias, "queue": queue.name}
            tasks.add(queue.ready, **labels, status="ready")
            tasks.add(queue.scheduled, **labels, status="scheduled")
            tasks.add(queue.blocked, **labels, status="blocked")
            tasks.add(queue.running, **labels, status="running")
            failed.add(queue.failed_last_hour, **labels)
            cancelled.add(queue.cancelled_last_hour, **labels)
            age = queue.oldest_ready_age
            oldest.add(age.total_seconds() if age is not None else 0, **labels)

        workers.add(count_live_workers(backend, now=at), backend=alias)

        # Every queue listed gets its series, zero when idle, so that ratios
        # and absent() in alerts behave.
        for queue in summaries:
            labels = {"backend": alias, "queue": queue.name}
            add_attempts(attempts, durations, queue.last_hour, labels)
    return [tasks, failed, cancelled, oldest, workers, attempts, durations, paused_family]


def add_attempts(
    attempts: MetricFamily, durations: MetricFamily, counts: QueueMinute, labels: dict[str, str]
) -> None:
    """Add one queue's attempt outcomes and duration histogram."""
    attempts.add(counts.successful, **labels, outcome="successful")
    attempts.add(counts.failed, **labels, outcome="failed")
    for bound, count in zip(DURATION_BUCKETS, counts.buckets, strict=True):
        durations.add(count, "_bucket", **labels, le=format_bound(bound))
    durations.add(counts.attempts, "_bucket", **labels, le="+Inf")
    durations.add(counts.duration_sum, "_sum", **labels)
    durations.add(counts.attempts, "_count", **labels)
