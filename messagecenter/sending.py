"""Step 2 of the tour, continued: a notification goes out as a workflow group.

Every send is one: a ``send_notification`` task per channel, run in
parallel, then ``report_delivery`` once all of them have finished, with
their outcomes (``dbtasks.workflows.group(..., then=...)``). One channel is
a group of one, so there is a single way a notification is sent, retried
and cancelled:

- ``enqueue_delivery()`` writes the group in the caller's transaction: the
  notification, its destinations, every task and its place in the attempt
  history (``NotificationTask``) commit together or not at all (dbtasks'
  workflows enqueue on the same database connection).
- Retry is per message: "Retry" sends again, as a new group with a new
  report, to every channel whose send failed or was cancelled; the channels
  that have it are left alone.
- Cancel is per message too: every channel's send that has not gone out is
  cancelled (``DatabaseBackend.cancel()``). A cancelled send counts as
  finished, so the report still runs and says which channels were cancelled.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from datetime import datetime

from dbtasks import workflows
from dbtasks.backend import DatabaseBackend
from dbtasks.compat import TaskResultDoesNotExist
from dbtasks.workflows.reading import WorkflowResult
from messagecenter.channels import default_channel
from messagecenter.models import Channel
from messagecenter.models import Destination
from messagecenter.models import Notification
from messagecenter.models import NotificationTask
from messagecenter.results import MessageDelivery
from messagecenter.tasks import report_delivery
from messagecenter.tasks import send_notification


def send(
    notification: Notification,
    channels: Sequence[Channel] | None = None,
    *,
    run_after: datetime | None = None,
) -> WorkflowResult:
    """Give a saved notification its destinations and enqueue their delivery.

    ``channels`` default to the notification's channel, else its owner's
    first. Call it inside ``transaction.atomic()`` with the notification's save.
    """
    if channels is None:
        channels = [notification.channel or default_channel(notification.owner)]
    destinations = Destination.objects.bulk_create(
        Destination(notification=notification, channel=channel, channel_name=channel.name)
        for channel in channels
    )
    return enqueue_delivery(notification, destinations, run_after=run_after)


def enqueue_delivery(
    notification: Notification,
    destinations: Sequence[Destination],
    *,
    run_after: datetime | None = None,
) -> WorkflowResult:
    """Enqueue a send to each destination and the report after them; remember their ids.

    Call it inside ``transaction.atomic()`` with the rows it updates.
    """
    send = send_notification.using(priority=notification.task_priority, run_after=run_after)
    run = workflows.group(
        [workflows.call(send, notification.pk, d.channel_id) for d in destinations],
        # At the default priority: an urgent message's sends go first, not its
        # bookkeeping (and urgency never lets one user's tasks jump others').
        then=workflows.call(report_delivery, notification.pk),
    ).enqueue(name=f"notification {notification.pk}")
    for destination, result in zip(destinations, run.results, strict=False):
        destination.task_result_id = result.id
        destination.outcome = destination.error = ""
    Destination.objects.bulk_update(destinations, ["task_result_id", "outcome", "error"])
    # Every send is kept for the attempt history: a Retry replaces the ids above.
    NotificationTask.objects.bulk_create(
        NotificationTask(notification=notification, destination=d, task_result_id=d.task_result_id)
        for d in destinations
    )
    notification.task_result_id = run.last.id
    notification.report = ""
    notification.save(update_fields=["task_result_id", "report"])
    return run


def retry(notification: Notification, delivery: MessageDelivery) -> bool:
    """Send again to the channels whose send failed or was cancelled; False if none."""
    if not delivery.can_retry:
        return False
    # A deleted channel stays as it ended: there is nowhere to send it.
    again = [d for d, shown in delivery.channels if shown.can_retry and d.channel_id is not None]
    if not again:
        return False
    enqueue_delivery(notification, again)
    return True


def cancel(delivery: MessageDelivery) -> int:
    """Cancel every channel's send that has not gone out; return how many were."""
    backend = send_notification.get_backend()
    if not isinstance(backend, DatabaseBackend):
        return 0
    cancelled = 0
    for destination, shown in delivery.channels:
        if shown.can_cancel:
            # A result purged meanwhile shows as expired: nothing to cancel.
            with contextlib.suppress(TaskResultDoesNotExist):
                cancelled += backend.cancel(destination.task_result_id)
    return cancelled
