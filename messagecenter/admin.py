"""The admin for support: notifications (how their delivery went, their task), channels
(never their tokens), send quotas and the throttle's counts.

A notification's page links its delivery task, and the task's page links back
(``notification_of``, registered with dbtasks' ``register_link``).
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from django.contrib import admin
from django.db.models import Count
from django.db.models import Q
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import NoReverseMatch
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString

from dbtasks.admin import register_link
from dbtasks.models import DBTaskResult
from messagecenter.models import Channel
from messagecenter.models import Notification
from messagecenter.models import NotificationTask
from messagecenter.models import SendQuota
from messagecenter.models import ThrottleCount
from messagecenter.results import delivery_of
from messagecenter.tasks import report_delivery
from messagecenter.tasks import send_notification

if TYPE_CHECKING:  # ModelAdmin is generic for type checkers only
    NotificationModelAdmin = admin.ModelAdmin[Notification]
    ChannelModelAdmin = admin.ModelAdmin[Channel]
    ThrottleModelAdmin = admin.ModelAdmin[ThrottleCount]
    QuotaModelAdmin = admin.ModelAdmin[SendQuota]
else:
    NotificationModelAdmin = ChannelModelAdmin = ThrottleModelAdmin = admin.ModelAdmin
    QuotaModelAdmin = admin.ModelAdmin


@admin.register(Notification)
class NotificationAdmin(NotificationModelAdmin):
    list_display = [
        "__str__",
        "owner",
        "channel",
        "priority",
        "created_at",
        "deliver_at",
        "task_link",
    ]
    list_filter = ["priority", "created_at"]
    search_fields = ["title", "message", "owner__username", "owner__email", "task_result_id"]
    raw_id_fields = ["owner", "channel"]
    readonly_fields = ["created_at", "delivery", "task_link"]
    date_hierarchy = "created_at"
    list_select_related = ["owner", "channel"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        # Notifications are created by the page, which also queues their
        # delivery; one added here would never be sent.
        return False

    @admin.display(description="report task", ordering="task_result_id")
    def task_link(self, notification: Notification) -> SafeString | str:
        """The delivery report's task admin page (dbtasks' "task" admin), by its result id."""
        result_id = notification.task_result_id
        try:
            url = reverse("admin:dbtasks_dbtaskresult_change", args=[result_id])
        except NoReverseMatch:  # no id yet, or the task admin is not installed
            return result_id
        return format_html('<a href="{}">Task {}</a>', url, result_id)

    @admin.display(description="delivery")
    def delivery(self, notification: Notification) -> str:
        """What the sender's page says of it (one query, on this page only)."""
        shown = delivery_of(notification)
        words = shown.label
        if shown.attempts:
            words += f", {shown.attempts} of {shown.max_attempts} attempts"
        if shown.error_detail:
            words += f": {shown.error_detail}"
        if shown.report_text:
            words += f". Report: {shown.report_text}"
        return words


@admin.register(Channel)
class ChannelAdmin(ChannelModelAdmin):
    """A user's channels for support: the token is never shown, only whether one is saved."""

    list_display = ["name", "owner", "topic_url", "token_hint", "created_at"]
    search_fields = ["name", "topic", "owner__username", "owner__email"]
    raw_id_fields = ["owner"]
    # Not "token": the form would show it to staff.
    fields = ["owner", "name", "server_url", "topic", "token_hint", "created_at"]
    readonly_fields = ["token_hint", "created_at"]
    list_select_related = ["owner"]


@admin.register(ThrottleCount)
class ThrottleCountAdmin(ThrottleModelAdmin):
    """Sign-in, sign-up and reset counts; delete one to lift a block at once."""

    list_display = ["__str__", "key", "window_start", "hits"]
    list_filter = ["window_start"]
    readonly_fields = ["key", "window_start", "hits"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(SendQuota)
class SendQuotaAdmin(QuotaModelAdmin):
    """A user's own send limits (empty: the site's), beside what they sent lately.

    Every user who has sent has a row (made at their first send); add one
    to set the limits of a user who has not.
    """

    list_display = ["user", "per_hour", "per_day", "sent_past_hour", "sent_past_day", "note"]
    list_editable = ["per_hour", "per_day"]
    search_fields = ["user__username", "user__email", "note"]
    raw_id_fields = ["user"]
    list_select_related = ["user"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[SendQuota]:
        now = timezone.now()
        recent = {
            "sent_hour": Q(user__notifications__created_at__gt=now - timedelta(hours=1)),
            "sent_day": Q(user__notifications__created_at__gt=now - timedelta(days=1)),
        }
        counts = {name: Count("user__notifications", filter=q) for name, q in recent.items()}
        return super().get_queryset(request).annotate(**counts)

    @admin.display(description="sent in the past hour", ordering="sent_hour")
    def sent_past_hour(self, quota: SendQuota) -> int:
        return int(getattr(quota, "sent_hour", 0))

    @admin.display(description="sent in the past 24 hours", ordering="sent_day")
    def sent_past_day(self, quota: SendQuota) -> int:
        return int(getattr(quota, "sent_day", 0))


@register_link
def notification_of(row: DBTaskResult) -> tuple[str, str] | None:
    """The notification a send or report task is for, for the link on the task's admin page."""
    notification: Notification | None
    if row.task_path == report_delivery.module_path:
        notification = Notification.objects.filter(task_result_id=str(row.pk)).first()
    elif row.task_path == send_notification.module_path:
        # Any of its send tasks: a channel's first send's or a Retry's.
        task = NotificationTask.objects.filter(task_result_id=str(row.pk))
        found = task.select_related("notification").first()
        notification = None if found is None else found.notification
    else:
        return None
    if notification is None:
        return None
    url = reverse("admin:messagecenter_notification_change", args=[notification.pk])
    return f"Notification {notification.pk}: {notification}", url
