"""Deliveries in any state, without a database: a ``ResultSummary`` built by hand."""

from __future__ import annotations

import datetime as dt
from typing import Any

from dbtasks.compat import TaskError
from dbtasks.compat import TaskResultStatus
from dbtasks.results import ResultSummary
from dbtasks.results import State
from messagecenter.models import Destination
from messagecenter.results import EXPIRED
from messagecenter.results import Delivery
from messagecenter.results import MessageDelivery

AT = dt.datetime(2025, 11, 21, 9, 30, tzinfo=dt.UTC)
PUBLIC = {
    State.SCHEDULED: TaskResultStatus.READY,
    State.BLOCKED: TaskResultStatus.READY,
    State.READY: TaskResultStatus.READY,
    State.RUNNING: TaskResultStatus.RUNNING,
    State.SUCCESSFUL: TaskResultStatus.SUCCESSFUL,
    State.FAILED: TaskResultStatus.FAILED,
    State.CANCELLED: TaskResultStatus.FAILED,
}


def error(text: str, path: str = "dbtasks.exceptions.PermanentFailure") -> TaskError:
    return TaskError(exception_class_path=path, traceback=f"{path}: {text}\n")


def delivery(
    state: str,
    *,
    attempts: int = 0,
    last_error: TaskError | None = None,
    worker_running: bool = True,
    **fields: Any,
) -> Delivery:
    """A Delivery in ``state`` (a dbtasks State value, or EXPIRED)."""
    if state == EXPIRED:
        return Delivery(None)
    state = State(state)
    values: dict[str, Any] = {
        "id": "42",
        "task_path": "messagecenter.tasks.send_notification",
        "queue_name": "default",
        "status": PUBLIC[state],
        "state": state,
        "attempts": attempts,
        "max_attempts": 5,
        "last_error": last_error,
        "enqueued_at": AT,
        "run_after": None,
        "available_after": AT,
        "started_at": AT if attempts else None,
        "last_attempted_at": AT if attempts else None,
        "finished_at": AT if state.is_finished else None,
        "cancelled_at": AT if state == State.CANCELLED else None,
        "return_value": None,
        **fields,
    }
    return Delivery(ResultSummary(**values), worker_running)


def message(
    *channels: Delivery, names: tuple[str, ...] = (), report_text: str = ""
) -> MessageDelivery:
    """A notification's MessageDelivery: these channels' deliveries, no report task."""
    names = names or tuple(f"Channel {number}" for number in range(1, len(channels) + 1))
    return MessageDelivery(
        channels=tuple(
            (Destination(channel_name=name, task_result_id=f"{41 + n}"), channel)
            for n, (name, channel) in enumerate(zip(names, channels, strict=True), start=1)
        ),
        report=Delivery(None),
        report_text=report_text,
    )


def send_id(notification: Any) -> str:
    """The result id of a notification's send to its one channel (not its report's)."""
    (destination,) = notification.destinations.all()
    return str(destination.task_result_id)


def seen(
    notification: Any, state: str = "READY", attempts: int = 0, report: str = "BLOCKED"
) -> str:
    """What the page sends for a one-channel row whose send is in ``state`` (``data-progress``)."""
    from messagecenter.live import fingerprint

    progress = (
        f"{notification.task_result_id}:{report}:0|{send_id(notification)}:{state}:{attempts}"
    )
    return f"{notification.pk}.{fingerprint(progress)}"
