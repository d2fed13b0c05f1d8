"""A notification's attempt history: every attempt of every send it had.

Each channel's first send and each Retry's send to it again are tasks of
their own (``NotificationTask``, with the ``Destination`` they sent to);
all of them are read at once (``get_results(..., history=True)``), so a
Retry never hides the failures before it.
"""

from __future__ import annotations

from dataclasses import dataclass

from dbtasks.results import Attempt
from dbtasks.results import State
from dbtasks.results import get_results
from messagecenter.models import Notification
from messagecenter.tasks import send_notification


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One line of a notification's attempt history."""

    # "Attempt 2", or "Retry 1, attempt 1" for a task a Retry enqueued; with
    # several channels, the channel's name first ("Phone: attempt 1").
    label: str
    attempt: Attempt | None  # None: running now, or its task's record is gone
    running: bool = False


def history_of(notification: Notification) -> list[HistoryEntry]:
    """Every attempt of every send task the notification had, oldest first: three queries."""
    tasks = list(
        notification.tasks.order_by("id").values_list(
            "task_result_id", "destination_id", "destination__channel_name"
        )
    )
    summaries = get_results(
        [task[0] for task in tasks],
        backend=send_notification.backend,
        task=send_notification,
        history=True,
    )
    several = len({destination for _, destination, _ in tasks}) > 1
    sends: dict[int | None, int] = {}  # sends so far, by destination
    entries = []
    for result_id, destination, channel_name in tasks:
        number = sends[destination] = sends.get(destination, -1) + 1
        send = f"Retry {number}" if number else "First send"
        prefix = f"{send}, attempt" if number else "Attempt"
        if several:
            send = f"{channel_name}: {send}"
            prefix = f"{channel_name}: {prefix[0].lower()}{prefix[1:]}"
        summary = summaries.get(result_id)
        if summary is None:  # purged by the retention policy: its attempts are gone
            entries.append(HistoryEntry(send, None))
            continue
        for attempt in summary.history or ():
            entries.append(HistoryEntry(f"{prefix} {attempt.number}", attempt))
        if summary.state == State.RUNNING:
            entries.append(HistoryEntry(f"{prefix} {summary.attempts}", None, running=True))
    return entries
