"""Step 1 of the tour: the tasks that deliver a notification to ntfy, in a worker.

``@task`` turns a function into a ``django.tasks.Task``. A notification is
sent as a dbtasks workflow group (``messagecenter/sending.py``): one
``send_notification(notification.pk, channel.pk)`` per channel, then
``report_delivery`` with their outcomes, once all of them have finished.
The page follows each one with ``get_result(result_id)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.tasks import TaskContext
from django.tasks import task

from dbtasks.cancellation import raise_if_cancelled
from dbtasks.exceptions import PermanentFailure
from dbtasks.exceptions import RetryLater
from messagecenter import ntfy
from messagecenter import reports
from messagecenter import tokens
from messagecenter.channels import Channel
from messagecenter.channels import default_channel
from messagecenter.models import Destination
from messagecenter.models import Notification


@task
def send_notification(notification_id: int, channel_id: int | None = None) -> dict[str, Any]:
    """Publish the notification to ntfy; return ntfy's answer (``{"id", "time", "topic"}``).

    It goes to the channel ``channel_id`` (one of the notification owner's
    channels), else to the notification's own channel; one that has no
    channel goes to its owner's default channel, made when missing.

    Failures raise, so the backend's retry policy applies (with dbtasks:
    up to ``max_attempts`` runs, waiting ``backoff_factor ** n`` seconds
    after failed run *n*). Timeouts, unreachable servers, 429 and 5xx
    answers are retried that way; a 429 with Retry-After waits at least as
    long as ntfy asked (``dbtasks.exceptions.RetryLater``).

    Failures that retrying cannot fix raise ``dbtasks.exceptions.PermanentFailure``
    instead, chained to the cause: dbtasks then marks the task FAILED at
    once, with no retry. That is how a task tells dbtasks "do not retry";
    here it covers ntfy refusing the message (400, 401, 403, 404, 413, a
    redirect, an answer that is not ntfy's), a notification that no
    longer exists and a token no configured key can decrypt. Other backends
    see an ordinary exception.

    Delivery is at least once: if the worker dies after ntfy accepted the
    message but before the result is recorded, the retry sends it again.
    """
    try:
        notification = Notification.objects.get(pk=notification_id)
    except Notification.DoesNotExist as error:
        raise PermanentFailure(f"Notification {notification_id} no longer exists.") from error

    channel = channel_for(notification, channel_id)
    # Cancelled while this attempt started (or between retries): do not send.
    raise_if_cancelled()
    message = ntfy.Message(
        message=notification.message,
        title=notification.title,
        priority=notification.priority,
        tags=notification.tags,
    )
    try:
        token = channel.token
    except tokens.TokenUnreadable as error:
        raise PermanentFailure(str(error)) from None  # the cause would only repeat it
    try:
        return ntfy.publish(message, url=channel.topic_url, token=token)
    except ImproperlyConfigured as error:
        # Not an http(s) URL with a valid topic: the channel must be fixed.
        raise PermanentFailure(f"Channel {channel.name!r}: {error}") from error
    except ntfy.NtfyRejected as error:
        raise PermanentFailure(str(error)) from error
    except ntfy.NtfyUnavailable as error:
        # A 429 says when to come back: wait at least that long (RetryLater),
        # still counting the attempt. Anything else takes the usual backoff.
        if error.retry_after_seconds:
            raise RetryLater(str(error), delay=error.retry_after_seconds) from error
        raise


def channel_for(notification: Notification, channel_id: int | None) -> Channel:
    """The channel to publish to; a deleted one (or another user's) fails for good."""
    wanted = channel_id if channel_id is not None else notification.channel_id
    if wanted is None:
        return default_channel(notification.owner)
    try:
        return Channel.objects.get(pk=wanted, owner_id=notification.owner_id)
    except Channel.DoesNotExist as error:
        raise PermanentFailure(f"Channel {wanted} no longer exists.") from error


def sender_key(args: Sequence[Any], kwargs: Mapping[str, Any]) -> str:
    """The concurrency key of a delivery: its sender (``TASKS`` OPTIONS in settings.py).

    dbtasks calls it as the task is enqueued, in the enqueuing transaction,
    so the new notification is there to read. Every way a delivery is
    enqueued (a send, a retry, a channel's test) is limited per sender.
    """
    notification_id = kwargs.get("notification_id", args[0] if args else None)
    owners = Notification.objects.filter(pk=notification_id).values_list("owner_id", flat=True)
    return f"user:{owners.first()}"


@task(takes_context=True)
def report_delivery(
    context: TaskContext[Any, Any], outcomes: Sequence[dict[str, Any]], notification_id: int
) -> dict[str, Any]:
    """Record how each channel's send ended, and the notification's one-line report.

    The workflow group's callback: ``outcomes`` are its sends' (dbtasks
    passes them first, whatever they did). A retry sends again to some
    channels only; the others keep the outcome recorded before. Running it
    twice records the same thing (at-least-once delivery is harmless here),
    and a report that a retry has replaced records nothing.
    """
    notification = Notification.objects.filter(pk=notification_id).first()
    if notification is None:
        raise PermanentFailure(f"Notification {notification_id} no longer exists.")
    if notification.task_result_id != context.task_result.id:
        return {"report": None, "superseded_by": notification.task_result_id}
    destinations = list(notification.destinations.all())
    by_result = {outcome["id"]: outcome for outcome in outcomes}
    for destination in destinations:
        if destination.task_result_id in by_result:
            reports.record_outcome(destination, by_result[destination.task_result_id])
    Destination.objects.bulk_update(destinations, ["outcome", "error"])
    report = reports.report_text(destinations)
    Notification.objects.filter(pk=notification_id).update(report=report)
    delivered = sum(destination.outcome == reports.DELIVERED for destination in destinations)
    return {"report": report, "delivered": delivered, "channels": len(destinations)}
