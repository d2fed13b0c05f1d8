"""The admin: browse tasks and their attempts, re-queue failures.

Rows are written by ``enqueue()`` and the worker only, so the admin never
adds or edits them. It may delete them (discarding results) and re-queue
FAILED tasks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from typing import Any

from django.contrib import admin
from django.contrib import messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone

from dbtasks.models import FAILED
from dbtasks.models import DBTaskAttempt
from dbtasks.models import DBTaskResult
from dbtasks.models import DBTaskResultQuerySet
from dbtasks.models import DBWorker

if TYPE_CHECKING:  # the admin classes are generic for type checkers only
    AttemptInline = admin.StackedInline[DBTaskAttempt, DBTaskResult]
    ResultAdmin = admin.ModelAdmin[DBTaskResult]
    WorkerAdmin = admin.ModelAdmin[DBWorker]
else:
    AttemptInline = admin.StackedInline
    ResultAdmin = WorkerAdmin = admin.ModelAdmin


class ReadOnlyAdminMixin:
    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class DBTaskAttemptInline(ReadOnlyAdminMixin, AttemptInline):
    model = DBTaskAttempt
    extra = 0
    can_delete = False
    readonly_fields = (
        "number",
        "outcome",
        "worker_id",
        "started_at",
        "stopped_at",
        "exception_class_path",
        "traceback",
    )
    fields = readonly_fields


@admin.register(DBTaskResult)
class DBTaskResultAdmin(ReadOnlyAdminMixin, ResultAdmin):
    list_display = [
        "id",
        "task_path",
        "status",
        "queue_name",
        "priority",
        "attempt_count",
        "enqueued_at",
        "started_at",
        "finished_at",
        "available_after",
    ]
    list_filter = ["status", "queue_name", "backend_name"]
    # "=id" matches the id exactly; task paths match by substring.
    search_fields = ["=id", "task_path"]
    ordering = ["-id"]
    list_per_page = 50
    show_full_result_count = False  # no COUNT(*) over a large table per page
    date_hierarchy = None
    readonly_fields = [*(field.name for field in DBTaskResult._meta.fields), "workflow"]
    inlines = [DBTaskAttemptInline]
    actions = ["requeue_failed", "cancel_ready", "request_cancel", "discard_failed"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[DBTaskResult]:
        queryset = super().get_queryset(request)
        match = request.resolver_match
        if match is not None and match.url_name == "dbtasks_dbtaskresult_changelist":
            # The list shows neither column: never read megabytes of JSON per row.
            queryset = queryset.defer("arguments", "return_value")
        return queryset

    @admin.display(description="workflow")
    def workflow(self, row: DBTaskResult) -> str:
        """A link to the workflow this task is a member of (dbtasks/workflows/admin.py)."""
        return workflow_link(row)

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[DBTaskResult], search_term: str
    ) -> tuple[QuerySet[DBTaskResult], bool]:
        # "=id" with a non-number would make the database compare text to an
        # integer; search ids only with digits.
        if search_term.strip().isdigit():
            return super().get_search_results(request, queryset, search_term)
        return queryset.filter(task_path__icontains=search_term.strip()), False

    @admin.action(description="Re-queue selected failed tasks now")
    def requeue_failed(self, request: HttpRequest, queryset: DBTaskResultQuerySet) -> None:
        count = queryset.requeue_failed(timezone.now())
        skipped = queryset.count() - count
        self.message_user(request, f"Re-queued {count} failed task(s).", messages.SUCCESS)
        if skipped:
            self.message_user(
                request, f"Skipped {skipped} task(s) that had not failed.", messages.WARNING
            )

    @admin.action(description="Cancel selected ready tasks (they will never run)")
    def cancel_ready(self, request: HttpRequest, queryset: DBTaskResultQuerySet) -> None:
        selected = queryset.count()
        count = queryset.cancel_ready(timezone.now())
        self.message_user(request, f"Cancelled {count} ready task(s).", messages.SUCCESS)
        if selected - count:
            self.message_user(
                request,
                f"Skipped {selected - count} task(s) that were not ready (running or finished).",
                messages.WARNING,
            )

    @admin.action(description="Ask selected running tasks to stop (cancel while running)")
    def request_cancel(self, request: HttpRequest, queryset: DBTaskResultQuerySet) -> None:
        selected = queryset.count()
        count = queryset.request_cancel(timezone.now())
        self.message_user(
            request,
            f"Asked {count} running task(s) to stop; each ends FAILED (TaskCancelled) "
            "once its worker passes the request on, unless it finishes first.",
            messages.SUCCESS,
        )
        if selected - count:
            self.message_user(
                request,
                f"Skipped {selected - count} task(s) not running or asked already.",
                messages.WARNING,
            )

    @admin.action(
        description="Discard selected failed tasks (delete them and their attempts)",
        permissions=["delete"],
    )
    def discard_failed(self, request: HttpRequest, queryset: QuerySet[DBTaskResult]) -> None:
        selected = queryset.count()
        failed = queryset.filter(status=FAILED)
        discarded = failed.count()
        failed.delete()
        self.message_user(request, f"Discarded {discarded} failed task(s).", messages.SUCCESS)
        if selected - discarded:
            self.message_user(
                request,
                f"Kept {selected - discarded} task(s) that had not failed.",
                messages.WARNING,
            )


@admin.register(DBWorker)
class DBWorkerAdmin(ReadOnlyAdminMixin, WorkerAdmin):
    list_display = ["worker_id", "hostname", "pid", "threads", "started_at", "heartbeat_at"]
    list_filter = ["backend_name", "hostname"]
    search_fields = ["worker_id", "hostname"]
    readonly_fields = [field.name for field in DBWorker._meta.fields]


# Workflows have their own admin, beside their models (dbtasks/workflows/).
from dbtasks.workflows.admin import workflow_link  # noqa: E402
