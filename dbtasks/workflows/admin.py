"""The admin for workflows: each one with its members' states, and a cancel action.

Registered by ``dbtasks/admin.py``. Like the task admin it never adds or
edits rows: workflows are written by ``enqueue()`` and the workers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from typing import Any

from django.contrib import admin
from django.contrib import messages
from django.db.models import Count
from django.db.models import Q
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from dbtasks.models import FINISHED
from dbtasks.models import RUNNING
from dbtasks.models import WAITING
from dbtasks.models import DBTaskResult
from dbtasks.workflows.cancelling import cancel
from dbtasks.workflows.models import DBWorkflow
from dbtasks.workflows.models import DBWorkflowMember

if TYPE_CHECKING:  # the admin classes are generic for type checkers only
    MemberInline = admin.TabularInline[DBWorkflowMember, DBWorkflow]
    WorkflowAdmin = admin.ModelAdmin[DBWorkflow]
else:
    MemberInline = admin.TabularInline
    WorkflowAdmin = admin.ModelAdmin


class DBWorkflowMemberInline(MemberInline):
    model = DBWorkflowMember
    extra = 0
    can_delete = False
    fields = readonly_fields = (
        "position",
        "task",
        "status",
        "receives",
        "waits_on",
        "waiting_for",
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[DBWorkflowMember]:
        # Only the columns shown: a member's arguments and return value may be large.
        return (
            super()
            .get_queryset(request)
            .select_related("result")
            .only(
                "position",
                "receives",
                "waits_on",
                "waiting_for",
                "workflow_id",
                "result__task_path",
                "result__status",
            )
        )

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="task")
    def task(self, member: DBWorkflowMember) -> str:
        url = reverse("admin:dbtasks_dbtaskresult_change", args=[member.result_id])
        return format_html('<a href="{}">{} ({})</a>', url, member.result.task_path, member.pk)

    @admin.display(description="status")
    def status(self, member: DBWorkflowMember) -> str:
        return member.result.status


def workflow_link(row: DBTaskResult) -> str:
    """A link to the workflow ``row`` is a member of, or "-"."""
    if not row.in_workflow:
        return "-"
    members = DBWorkflowMember.objects.using(row._state.db).filter(pk=row.pk)
    workflow_id = members.values_list("workflow_id", flat=True).first()
    if workflow_id is None:
        return "-"
    url = reverse("admin:dbtasks_dbworkflow_change", args=[workflow_id])
    return format_html('<a href="{}">workflow {}</a>', url, workflow_id)


@admin.register(DBWorkflow)
class DBWorkflowAdmin(WorkflowAdmin):
    list_display = ["id", "name", "created_at", "cancelled_at", "waiting", "running", "finished"]
    list_filter = ["backend_name"]
    search_fields = ["=id", "name"]
    ordering = ["-id"]
    list_per_page = 50
    show_full_result_count = False
    readonly_fields = ["backend_name", "name", "created_at", "cancelled_at"]
    inlines = [DBWorkflowMemberInline]
    actions = ["cancel_workflows"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[DBWorkflow]:
        # The members' states counted in the list's one query.
        return (
            super()
            .get_queryset(request)
            .annotate(
                waiting_count=Count("members", filter=Q(members__result__status__in=WAITING)),
                running_count=Count("members", filter=Q(members__result__status=RUNNING)),
                finished_count=Count("members", filter=Q(members__result__status__in=FINISHED)),
            )
        )

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="waiting", ordering="waiting_count")
    def waiting(self, workflow: Any) -> int:
        return int(workflow.waiting_count)

    @admin.display(description="running", ordering="running_count")
    def running(self, workflow: Any) -> int:
        return int(workflow.running_count)

    @admin.display(description="finished", ordering="finished_count")
    def finished(self, workflow: Any) -> int:
        return int(workflow.finished_count)

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[DBWorkflow], search_term: str
    ) -> tuple[QuerySet[DBWorkflow], bool]:
        # "=id" with a non-number would compare text to an integer.
        if search_term.strip().isdigit():
            return super().get_search_results(request, queryset, search_term)
        return queryset.filter(name__icontains=search_term.strip()), False

    @admin.action(description="Cancel selected workflows (their unstarted tasks never run)")
    def cancel_workflows(self, request: HttpRequest, queryset: QuerySet[DBWorkflow]) -> None:
        cancelled = sum(cancel(str(pk)) for pk in queryset.values_list("pk", flat=True))
        self.message_user(
            request, f"Cancelled {cancelled} task(s) that had not started.", messages.SUCCESS
        )
