"""The admin: browse tasks and their attempts, re-queue failures.

Your app can link each task's page to what the task works for:
``dbtasks.admin.register_link`` (dbtasks/admin_links.py).

Rows are written by ``enqueue()`` and the worker only, so the admin never
adds or edits them. It may delete them (discarding results) and re-queue
FAILED tasks.

Made for a table of millions: the filters offer the configured queues and
backends instead of asking the table for its distinct values
(``dbtasks/admin_filters.py``, with the time columns), and the paginator
estimates large counts (``dbtasks.estimates``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from typing import Any

from django.contrib import admin
from django.contrib import messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.html import format_html_join
from django.utils.safestring import SafeString

from dbtasks.admin_filters import BackendFilter
from dbtasks.admin_filters import QueueFilter
from dbtasks.admin_filters import StateFilter
from dbtasks.admin_filters import time_column
from dbtasks.admin_links import links_for
from dbtasks.admin_links import register_link
from dbtasks.admin_links import unregister_link
from dbtasks.clock import database_time
from dbtasks.estimates import EstimatedCountPaginator
from dbtasks.models import FAILED
from dbtasks.models import DBPausedQueue
from dbtasks.models import DBTaskAttempt
from dbtasks.models import DBTaskResult
from dbtasks.models import DBTaskResultQuerySet
from dbtasks.models import DBWorker

# Your app links a task to what it works for with these (dbtasks/admin_links.py).
__all__ = ["register_link", "unregister_link"]

if TYPE_CHECKING:  # the admin classes are generic for type checkers only
    AttemptInline = admin.StackedInline[DBTaskAttempt, DBTaskResult]
    ResultAdmin = admin.ModelAdmin[DBTaskResult]
    WorkerAdmin = admin.ModelAdmin[DBWorker]
    PausedQueueAdmin = admin.ModelAdmin[DBPausedQueue]
else:
    AttemptInline = admin.StackedInline
    ResultAdmin = WorkerAdmin = PausedQueueAdmin = admin.ModelAdmin


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
        "started",
        "stopped",
        "exception_class_path",
        "traceback",
    )
    fields = readonly_fields
    started = time_column("started_at", "started")
    stopped = time_column("stopped_at", "stopped")


@admin.register(DBTaskResult)
class DBTaskResultAdmin(ReadOnlyAdminMixin, ResultAdmin):
    list_display = [
        "id",
        "task_path",
        "state",
        "queue_name",
        "priority",
        "attempt_count",
        "enqueued",
        "started",
        "finished",
        "available",
    ]
    list_filter = [StateFilter, QueueFilter, BackendFilter]
    # "=id" matches the id exactly; task paths match by substring
    # (get_search_results() below).
    search_fields = ["=id", "task_path"]
    ordering = ["-id"]
    list_per_page = 50
    show_full_result_count = False  # no COUNT(*) over a large table per page
    paginator = EstimatedCountPaginator  # nor one to number the pages
    date_hierarchy = None
    # Every field, times replaced by their labelled columns.
    readonly_fields = [
        {
            "enqueued_at": "enqueued",
            "started_at": "started",
            "finished_at": "finished",
            "last_attempted_at": "last_attempted",
            "available_after": "available",
            "run_after": "run_after_time",
            "cancelled_at": "cancelled",
        }.get(field.name, field.name)
        for field in DBTaskResult._meta.fields
    ] + ["workflow", "links"]
    inlines = [DBTaskAttemptInline]
    actions = ["requeue_failed", "cancel_ready", "request_cancel", "discard_failed"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[DBTaskResult]:
        queryset = super().get_queryset(request)
        match = request.resolver_match
        if match is not None and match.url_name == "dbtasks_dbtaskresult_changelist":
            # The list shows neither column: never read megabytes of JSON per row.
            queryset = queryset.defer("arguments", "return_value")
        return queryset

    @admin.display(description="links")
    def links(self, row: DBTaskResult) -> SafeString | str:
        """What your app says this task works for (``register_link``, dbtasks/admin_links.py)."""
        found = links_for(row)
        if not found:
            return "-"
        return format_html_join(" · ", '<a href="{1}">{0}</a>', found)

    @admin.display(description="workflow")
    def workflow(self, row: DBTaskResult) -> str:
        """A link to the workflow this task is a member of (dbtasks/workflows/admin.py)."""
        return workflow_link(row)

    enqueued = time_column("enqueued_at", "enqueued")
    started = time_column("started_at", "started")
    finished = time_column("finished_at", "finished")
    last_attempted = time_column("last_attempted_at", "last attempted")
    available = time_column("available_after", "available after")
    run_after_time = time_column("run_after", "run after")
    cancelled = time_column("cancelled_at", "cancelled")

    @admin.display(description="state", ordering="status")
    def state(self, obj: DBTaskResult) -> str:
        """The status, but a cancelled task reads Cancelled, not Failed."""
        if obj.cancelled_at is not None or (
            obj.status == FAILED and obj.cancel_requested_at is not None
        ):
            return "Cancelled"
        return str(obj.get_status_display())

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[DBTaskResult], search_term: str
    ) -> tuple[QuerySet[DBTaskResult], bool]:
        # "=id" with a non-number would make the database compare text to an
        # integer; search ids only with digits.
        term = search_term.strip()
        if not term:
            return queryset, False  # no "LIKE '%%'" on every row of the list
        if term.isdigit():
            return super().get_search_results(request, queryset, term)
        if term.startswith(("queue:", "task:")):  # a concurrency key, exactly
            return queryset.filter(concurrency_key=term), False
        return queryset.filter(task_path__icontains=term), False

    @admin.action(description="Re-queue selected failed tasks now")
    def requeue_failed(self, request: HttpRequest, queryset: DBTaskResultQuerySet) -> None:
        count = queryset.requeue_failed(database_time(queryset.db))
        skipped = queryset.count() - count
        self.message_user(request, f"Re-queued {count} failed task(s).", messages.SUCCESS)
        if skipped:
            self.message_user(
                request, f"Skipped {skipped} task(s) that had not failed.", messages.WARNING
            )

    @admin.action(description="Cancel selected ready tasks (they will never run)")
    def cancel_ready(self, request: HttpRequest, queryset: DBTaskResultQuerySet) -> None:
        selected = queryset.count()
        count = queryset.cancel_ready(database_time(queryset.db))
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
        count = queryset.request_cancel(database_time(queryset.db))
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
    list_display = ["worker_id", "hostname", "pid", "threads", "started", "heartbeat"]
    list_filter = ["backend_name", "hostname"]
    search_fields = ["worker_id", "hostname"]
    readonly_fields = [
        {"started_at": "started", "heartbeat_at": "heartbeat"}.get(field.name, field.name)
        for field in DBWorker._meta.fields
    ]
    started = time_column("started_at", "started")
    heartbeat = time_column("heartbeat_at", "last heartbeat")


# Workflows have their own admin, beside their models (dbtasks/workflows/), and
# concurrency and rate limits theirs (dbtasks/semaphores_admin.py).
from dbtasks import semaphores_admin  # noqa: E402, F401
from dbtasks.workflows.admin import workflow_link  # noqa: E402


@admin.register(DBPausedQueue)
class DBPausedQueueAdmin(PausedQueueAdmin):
    """Pause a queue by adding it here, resume it by deleting it (``dbtasks.queues``)."""

    list_display = ["queue_name", "backend_name", "paused_at"]
    fields = ["queue_name", "backend_name"]

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: DBPausedQueue, form: Any, change: bool) -> None:
        obj.paused_at = timezone.now()
        super().save_model(request, obj, form, change)
