"""The admin for concurrency and rate limits: each key's slots in use, or its next start.

Registered by ``dbtasks/admin.py``. Read-only: the rows are written by
``enqueue()`` and the workers (``dbtasks/sql/semaphores.py``,
``dbtasks/sql/rate_limits.py``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString

from dbtasks.models import DBRateBucket
from dbtasks.models import DBSemaphore

if TYPE_CHECKING:  # the admin classes are generic for type checkers only
    SemaphoreAdmin = admin.ModelAdmin[DBSemaphore]
    RateBucketAdmin = admin.ModelAdmin[DBRateBucket]
else:
    SemaphoreAdmin = RateBucketAdmin = admin.ModelAdmin


@admin.register(DBSemaphore)
class DBSemaphoreAdmin(SemaphoreAdmin):
    list_display = ["key", "in_use", "limit", "backend_name", "tasks"]
    list_filter = ["backend_name"]
    search_fields = ["key"]
    ordering = ["key"]

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="tasks")
    def tasks(self, semaphore: DBSemaphore) -> SafeString:
        """A link to the key's tasks in the task admin."""
        url = reverse("admin:dbtasks_dbtaskresult_changelist")
        return format_html('<a href="{}?q={}">tasks</a>', url, semaphore.key)


@admin.register(DBRateBucket)
class DBRateBucketAdmin(RateBucketAdmin):
    list_display = [
        "key",
        "queue_name",
        "limit",
        "period",
        "next_at",
        "window_starts",
        "window_started_at",
        "backend_name",
    ]
    list_filter = ["backend_name", "queue_name"]
    search_fields = ["key"]
    ordering = ["queue_name", "key"]

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
