"""Step 7 of the tour: what the page shows of a delivery (its state, attempts, errors, times).

Everything is read through dbtasks' public read API (``dbtasks.results``):
``deliveries_for()`` reads a page of notifications' results in one query
(``get_results()``), and every ``Delivery`` is built from that one
``ResultSummary`` there, whether for the list page, a single
row after Cancel or Retry, or a row that the live poll found changed. A
result that the retention policy purged is ``EXPIRED``. ``history_of()``
reads every attempt of every delivery task a notification had (the first
send, then one per Retry) in three queries.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from dbtasks.compat import TaskError
from dbtasks.progress import live_workers
from dbtasks.progress import progress_of
from dbtasks.results import Attempt
from dbtasks.results import ResultSummary
from dbtasks.results import State
from dbtasks.results import get_results
from messagecenter.errors import one_line_error
from messagecenter.errors import plain_error
from messagecenter.models import Notification
from messagecenter.tasks import send_notification

# Not a dbtasks state: the result is gone (purged by the retention policy).
EXPIRED = "EXPIRED"

LABELS = {
    State.SCHEDULED: "Scheduled",
    State.BLOCKED: "Waiting",
    State.READY: "Queued",
    State.RUNNING: "Running",
    State.SUCCESSFUL: "Delivered",
    State.FAILED: "Failed",
    State.CANCELLED: "Cancelled",
    EXPIRED: "Expired",
}


@dataclass(frozen=True, slots=True)
class Delivery:
    """Where one notification's delivery is, as the page shows it."""

    summary: ResultSummary | None  # None: the result was purged (EXPIRED)
    # Whether a worker takes this task's queue; only looked up for a queued row.
    worker_running: bool = True

    @property
    def status(self) -> str:
        """A dbtasks ``State`` value, or EXPIRED; the row's ``data-status``."""
        return EXPIRED if self.summary is None else self.summary.state.value

    @property
    def label(self) -> str:
        if self.is_retrying:
            return "Retrying"
        return LABELS.get(self.status, self.status.title())

    @property
    def progress(self) -> str:
        """What the live poll compares (``dbtasks.progress.with_progress``)."""
        return "" if self.summary is None else progress_of(self.summary)

    @property
    def attempts(self) -> int:
        return 0 if self.summary is None else self.summary.attempts

    @property
    def max_attempts(self) -> int:
        return 0 if self.summary is None else self.summary.max_attempts

    @property
    def is_finished(self) -> bool:
        """Whether the state can no longer change (the poll skips the row)."""
        return self.summary is None or self.summary.is_finished

    @property
    def is_retrying(self) -> bool:
        return self.summary is not None and self.summary.is_retrying

    @property
    def can_retry(self) -> bool:
        return self.status in (State.FAILED, State.CANCELLED)

    @property
    def can_cancel(self) -> bool:
        """Not finished: a waiting task never runs, a running one is asked to stop."""
        return self.status in (State.SCHEDULED, State.READY, State.BLOCKED, State.RUNNING)

    @property
    def is_stalled(self) -> bool:
        """Due, but no worker takes its queue: nothing will move until one starts."""
        return self.status == State.READY and not self.worker_running

    @property
    def last_error(self) -> TaskError | None:
        return None if self.summary is None else self.summary.last_error

    @property
    def error_summary(self) -> str:
        """In plain words, for the person who sent it."""
        return plain_error(self.last_error) if self.last_error else ""

    @property
    def error_detail(self) -> str:
        """ "ExceptionClass: the whole message", for the curious and for support."""
        if self.last_error is None:
            return ""
        return one_line_error(
            self.last_error.exception_class_path, self.last_error.traceback, limit=None
        )

    @property
    def next_try_at(self) -> datetime | None:
        if self.summary is None or self.summary.state != State.SCHEDULED:
            return None
        return self.summary.available_after

    @property
    def running_since(self) -> datetime | None:
        if self.summary is None or self.status != State.RUNNING:
            return None
        return self.summary.last_attempted_at

    @property
    def delivered_at(self) -> datetime | None:
        if self.summary is None or self.status != State.SUCCESSFUL:
            return None
        return self.summary.finished_at

    @property
    def finished_at(self) -> datetime | None:
        return None if self.summary is None else self.summary.finished_at

    @property
    def ntfy_id(self) -> str:
        if self.status != State.SUCCESSFUL:
            return ""
        return ntfy_id_of(self.summary.return_value if self.summary else None)


def ntfy_id_of(return_value: Any) -> str:
    if isinstance(return_value, dict):
        ntfy_id = return_value.get("id")
        if isinstance(ntfy_id, str):
            return ntfy_id
    return ""


def deliveries_for(notifications: Iterable[Notification]) -> dict[int, Delivery]:
    """Return each notification's Delivery, by notification id: one query for the page.

    (A queued row adds one to say whether a worker is running.)
    """
    notifications = list(notifications)
    summaries = get_results(
        [notification.task_result_id for notification in notifications],
        backend=send_notification.backend,
        task=send_notification,
    )
    # Why a due row does not move: no worker takes its queue (one query a queue).
    workers: dict[str, bool] = {}
    deliveries = {}
    for notification in notifications:
        summary = summaries.get(notification.task_result_id)
        worker_running = True
        if summary is not None and summary.state == State.READY:
            if summary.queue_name not in workers:
                count = live_workers(summary.queue_name, backend=send_notification.backend)
                workers[summary.queue_name] = count > 0
            worker_running = workers[summary.queue_name]
        deliveries[notification.pk] = Delivery(summary, worker_running)
    return deliveries


def delivery_of(notification: Notification) -> Delivery:
    """One notification's Delivery (``deliveries_for()`` of one)."""
    return deliveries_for([notification])[notification.pk]


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One line of a notification's attempt history."""

    label: str  # "Attempt 2", or "Retry 1, attempt 1" for a task a Retry enqueued
    attempt: Attempt | None  # None: running now, or its task's record is gone
    running: bool = False


def history_of(notification: Notification) -> list[HistoryEntry]:
    """Every attempt of every delivery task the notification had, oldest first: three queries.

    The first send and each Retry are tasks of their own (``NotificationTask``);
    all of them are read at once (``get_results(..., history=True)``).
    """
    ids = list(notification.tasks.order_by("id").values_list("task_result_id", flat=True))
    summaries = get_results(
        ids, backend=send_notification.backend, task=send_notification, history=True
    )
    entries = []
    for number, result_id in enumerate(ids):
        send = f"Retry {number}" if number else "First send"
        prefix = f"{send}, attempt" if number else "Attempt"
        summary = summaries.get(result_id)
        if summary is None:  # purged by the retention policy: its attempts are gone
            entries.append(HistoryEntry(send, None))
            continue
        for attempt in summary.history or ():
            entries.append(HistoryEntry(f"{prefix} {attempt.number}", attempt))
        if summary.state == State.RUNNING:
            entries.append(HistoryEntry(f"{prefix} {summary.attempts}", None, running=True))
    return entries
