"""Step 7 of the tour: what the page shows of a delivery (its state, attempts, errors, times).

Everything is read through dbtasks' public read API (``dbtasks.results``):
``deliveries_for()`` reads a page of notifications' destinations and
results in two queries (``get_results()``), and every ``Delivery`` is built
from one ``ResultSummary`` there, whether for the list page, a single
row after Cancel or Retry, or a row that the live poll found changed. A
result that the retention policy purged is ``EXPIRED``. Every attempt of
every send a notification had is read by ``history.history_of()``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from dbtasks.compat import Task
from dbtasks.compat import TaskError
from dbtasks.progress import live_workers
from dbtasks.progress import progress_of
from dbtasks.results import ResultSummary
from dbtasks.results import State
from dbtasks.results import get_results
from messagecenter import live
from messagecenter import reports
from messagecenter.errors import one_line_error
from messagecenter.errors import plain_error
from messagecenter.models import Destination
from messagecenter.models import Notification
from messagecenter.ntfy import ntfy_id_of
from messagecenter.tasks import report_delivery
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


# A message to several channels, some of which have it and some not.
PARTIAL = "PARTIAL"
# Of several channels' unfinished states, the one the message shows: the most advanced.
UNFINISHED_ORDER = (State.RUNNING, State.READY, State.BLOCKED, State.SCHEDULED)
MESSAGE_LABELS = LABELS | {State.RUNNING: "Sending", PARTIAL: "Partly delivered"}


@dataclass(frozen=True, slots=True)
class MessageDelivery:
    """Where a notification's delivery is: each channel's send, and the report after them.

    With one channel it shows as that channel's ``Delivery`` (``single``).
    """

    channels: tuple[tuple[Destination, Delivery], ...]
    report: Delivery  # the report_delivery task's (EXPIRED: none yet, or purged)
    report_text: str

    @property
    def single(self) -> Delivery | None:
        return self.channels[0][1] if len(self.channels) == 1 else None

    @property
    def status(self) -> str:
        """The row's ``data-status``: a dbtasks ``State``, PARTIAL or EXPIRED."""
        if self.single is not None:
            return self.single.status
        statuses = {delivery.status for _, delivery in self.channels}
        for state in UNFINISHED_ORDER:
            if state in statuses:
                return state.value
        if len(statuses) <= 1:  # all alike, or no channel at all (nothing to show)
            return statuses.pop() if statuses else EXPIRED
        return PARTIAL if State.SUCCESSFUL in statuses else State.FAILED.value

    @property
    def label(self) -> str:
        if self.single is not None:
            return self.single.label
        return "Retrying" if self.is_retrying else MESSAGE_LABELS.get(self.status, self.status)

    @property
    def progress(self) -> str:
        """What the live poll compares: the report's progress, then each channel's."""
        channels = " ".join(delivery.progress for _, delivery in self.channels)
        return f"{self.report.progress}|{channels}"

    @property
    def fingerprint(self) -> str:
        """The row's ``data-progress`` after its id: what the poll compares."""
        return live.fingerprint(self.progress)

    @property
    def due(self) -> datetime | None:
        """When the earliest scheduled send is due (for the poll's pace)."""
        times = [self.report.next_try_at, *(delivery.next_try_at for _, delivery in self.channels)]
        return min((time for time in times if time is not None), default=None)

    @property
    def is_finished(self) -> bool:
        """Every channel has finished, and (with several, whose row shows it) so has the report."""
        channels_done = all(delivery.is_finished for _, delivery in self.channels)
        return channels_done and (self.single is not None or self.report.is_finished)

    @property
    def is_retrying(self) -> bool:
        return any(delivery.is_retrying for _, delivery in self.channels)

    @property
    def is_stalled(self) -> bool:
        return any(delivery.is_stalled for _, delivery in self.channels)

    @property
    def attempts(self) -> int:
        return sum(delivery.attempts for _, delivery in self.channels)

    @property
    def max_attempts(self) -> int:
        return sum(delivery.max_attempts for _, delivery in self.channels)

    @property
    def can_retry(self) -> bool:
        """Every channel's send has ended, and one of them failed or was cancelled."""
        finished = all(delivery.is_finished for _, delivery in self.channels)
        return finished and any(delivery.can_retry for _, delivery in self.channels)

    @property
    def can_cancel(self) -> bool:
        return any(delivery.can_cancel for _, delivery in self.channels)

    @property
    def error_detail(self) -> str:
        """Each failed channel's error as raised, for support."""
        if self.single is not None:
            return self.single.error_detail
        return "; ".join(
            f"{destination.channel_name}: {delivery.error_detail}"
            for destination, delivery in self.channels
            if delivery.error_detail
        )


def deliveries_for(notifications: Iterable[Notification]) -> dict[int, MessageDelivery]:
    """Return each notification's MessageDelivery, by notification id: two queries a page.

    (One for the destinations, one for every task result they and the
    reports name; a queued row adds one to say whether a worker is running.)
    """
    notifications = list(notifications)
    destinations: dict[int, list[Destination]] = {n.pk: [] for n in notifications}
    for destination in Destination.objects.filter(notification__in=list(destinations)):
        destinations[destination.notification_id].append(destination)
    ids = [n.task_result_id for n in notifications]
    ids += [d.task_result_id for found in destinations.values() for d in found]
    summaries = get_results(ids, backend=send_notification.backend)
    # Why a due row does not move: no worker takes its queue (one query a queue).
    workers: dict[str, bool] = {}

    def delivery(result_id: str, task: Task[Any, Any]) -> Delivery:
        summary = summaries.get(result_id)
        if summary is not None and summary.task_path != task.module_path:
            summary = None  # not what this id should name: as the poll reads it, none
        worker_running = True
        if summary is not None and summary.state == State.READY:
            if summary.queue_name not in workers:
                count = live_workers(summary.queue_name, backend=send_notification.backend)
                workers[summary.queue_name] = count > 0
            worker_running = workers[summary.queue_name]
        return Delivery(summary, worker_running)

    return {
        n.pk: MessageDelivery(
            channels=tuple(
                (d, delivery(d.task_result_id, send_notification)) for d in destinations[n.pk]
            ),
            report=(report := delivery(n.task_result_id, report_delivery)),
            report_text=reports.line_of(report.summary, recorded=n.report),
        )
        for n in notifications
    }


def delivery_of(notification: Notification) -> MessageDelivery:
    """One notification's MessageDelivery (``deliveries_for()`` of one)."""
    return deliveries_for([notification])[notification.pk]
