"""The domain record: one ``Notification`` per message a user sends, and one
``Destination`` per channel it goes to.

Each destination keeps the id of the task result that delivers to its
channel (``task_result_id``), so the page can follow it; the notification
keeps the id of the delivery report that runs once every channel is done
(a dbtasks workflow group, ``messagecenter/sending.py``), and the ids of
every send task it had (``NotificationTask``: each channel's first send,
then one per channel a Retry sends to again), so its attempt history keeps
earlier failures. The rows outlive the task results: when the backend
purges old results, they stay and their status shows as expired.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from messagecenter.channels import Channel
from messagecenter.live_tokens import LiveKey
from messagecenter.quotas import SendQuota
from messagecenter.throttle import ThrottleCount

__all__ = [
    "TASK_PRIORITIES",
    "Channel",
    "Destination",
    "LiveKey",
    "Notification",
    "NotificationTask",
    "SendQuota",
    "ThrottleCount",
]


class Notification(models.Model):
    """A push notification a user asked to send to the ntfy topic."""

    class Priority(models.IntegerChoices):
        # ntfy's five levels, with ntfy's own numbers.
        MIN = 1, "Min"
        LOW = 2, "Low"
        DEFAULT = 3, "Default"
        HIGH = 4, "High"
        URGENT = 5, "Urgent"

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications"
    )
    # The first of its channels (all of them: ``destinations``). Null for a
    # channel deleted since (its delivery fails clearly).
    channel = models.ForeignKey(
        Channel, on_delete=models.SET_NULL, null=True, blank=True, related_name="notifications"
    )
    message = models.TextField()
    title = models.CharField(max_length=250, blank=True)
    priority = models.PositiveSmallIntegerField(choices=Priority.choices, default=Priority.DEFAULT)
    # ntfy tags: emoji short codes ("warning") or plain words, shown with the message.
    tags = models.JSONField(default=list, blank=True)
    # When to deliver; None means as soon as a worker is free.
    deliver_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    # The TaskResult id of the latest delivery report (``report_delivery``),
    # which runs once every channel's send has finished. A retry enqueues a
    # new one. Every send task stays in ``tasks`` (NotificationTask).
    # Empty inside the transaction that creates the row.
    task_result_id = models.CharField(max_length=64, blank=True, editable=False)
    # What the latest report says, e.g. "Delivered to 2 of 3 channels; Phone failed: ...".
    report = models.TextField(blank=True, editable=False)
    # The send form's one-time token: the same form posted twice is one notification.
    idempotency_key = models.UUIDField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # The list page: one user's notifications, newest first.
            models.Index(fields=["owner", "-created_at", "-id"], name="notification_owner_recent"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["owner", "idempotency_key"],
                condition=models.Q(idempotency_key__isnull=False),
                name="notification_owner_idempotency_key",
            ),
        ]

    def __str__(self) -> str:
        return self.title or self.message[:50]

    @property
    def task_priority(self) -> int:
        """The task's priority (-100..100): urgent and high go ahead of the sender's own waiting
        sends; the per-user limit is fair (settings.TASKS), so never ahead of other users'."""
        return TASK_PRIORITIES.get(self.priority, 0)


class Destination(models.Model):
    """One channel a notification goes to, and the task that delivers it there."""

    notification = models.ForeignKey(
        Notification, on_delete=models.CASCADE, related_name="destinations"
    )
    # Null once the channel is deleted; its name stays for the page and the report.
    channel = models.ForeignKey(
        Channel, on_delete=models.SET_NULL, null=True, blank=True, related_name="destinations"
    )
    channel_name = models.CharField(max_length=100)
    # The TaskResult id of the latest send to this channel (a retry replaces it).
    task_result_id = models.CharField(max_length=64, blank=True, editable=False)
    # Recorded by the delivery report: how the latest send ended ("" until then).
    outcome = models.CharField(max_length=20, blank=True, editable=False)
    error = models.TextField(blank=True, editable=False)

    class Meta:
        ordering = ["notification", "pk"]

    def __str__(self) -> str:
        return f"{self.notification} → {self.channel_name}"


class NotificationTask(models.Model):
    """One send task of a notification: each channel's first send, then one per Retry, in order."""

    notification = models.ForeignKey(Notification, on_delete=models.CASCADE, related_name="tasks")
    # The channel it sent to (None for a task recorded before destinations).
    destination = models.ForeignKey(
        Destination, on_delete=models.CASCADE, null=True, blank=True, related_name="tasks"
    )
    task_result_id = models.CharField(max_length=64)

    class Meta:
        ordering = ["notification", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["notification", "task_result_id"], name="notification_task_once"
            ),
        ]
        indexes = [
            # The task admin's link back: which notification a task delivers.
            models.Index(fields=["task_result_id"], name="notification_task_result"),
        ]

    def __str__(self) -> str:
        return f"task {self.task_result_id} of notification {self.notification_id}"


# A sender's waiting sends get their slots highest first; everything else is 0.
TASK_PRIORITIES: dict[int, int] = {
    Notification.Priority.URGENT: 20,
    Notification.Priority.HIGH: 10,
}
