"""The admin for notifications: find one, see its task result id."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.contrib import admin
from django.http import HttpRequest

from messagecenter.models import Notification

if TYPE_CHECKING:  # ModelAdmin is generic for type checkers only
    NotificationModelAdmin = admin.ModelAdmin[Notification]
else:
    NotificationModelAdmin = admin.ModelAdmin


@admin.register(Notification)
class NotificationAdmin(NotificationModelAdmin):
    list_display = ["__str__", "owner", "priority", "created_at", "deliver_at", "task_result_id"]
    list_filter = ["priority", "created_at"]
    search_fields = ["title", "message", "owner__username", "owner__email", "task_result_id"]
    raw_id_fields = ["owner"]
    readonly_fields = ["created_at", "task_result_id"]
    date_hierarchy = "created_at"
    list_select_related = ["owner"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        # Notifications are created by the page, which also queues their
        # delivery; one added here would never be sent.
        return False
