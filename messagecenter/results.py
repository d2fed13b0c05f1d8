"""What the page shows of a delivery: status, attempts, last error, ntfy's id.

``delivery_of()`` reads one result through the public API
(``send_notification.get_result()``: two queries). The list page would need
that for every row, so ``deliveries_for()`` reads a whole page of results
from the dbtasks tables in one query instead. Both build the same
``Delivery``; a result that the retention policy purged is ``EXPIRED``.
The poll endpoint needs even less, the status and attempt count alone:
``progress_of()`` reads them with the notification, in one query.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING
from typing import Any
from typing import TypedDict
from typing import cast

from django.contrib.auth.models import User
from django.db.models import BigIntegerField
from django.db.models import Case
from django.db.models import OuterRef
from django.db.models import QuerySet
from django.db.models import Subquery
from django.db.models import Value
from django.db.models import When
from django.db.models.functions import Cast
from django.tasks import TaskResult
from django.tasks import TaskResultStatus
from django.tasks.exceptions import TaskResultDoesNotExist
from django.tasks.exceptions import TaskResultMismatch

from dbtasks.backend import DatabaseBackend
from dbtasks.models import DBTaskAttempt
from dbtasks.models import DBTaskResult
from messagecenter.models import Notification
from messagecenter.tasks import send_notification

if TYPE_CHECKING:
    from django_stubs_ext import WithAnnotations


class LatestFailure(TypedDict):
    """What ``deliveries_for()`` annotates each row with: its latest failed attempt."""

    error_class: str | None
    error_traceback: str | None


# Not TaskResultStatus values: the result is gone (purged by the retention
# policy), or it FAILED because it was cancelled before it ran.
EXPIRED = "EXPIRED"
CANCELLED = "CANCELLED"
CANCELLED_ERROR = "dbtasks.exceptions.TaskCancelled"
LABELS = {**dict(TaskResultStatus.choices), EXPIRED: "Expired", CANCELLED: "Cancelled"}
FINAL_STATUSES = frozenset(
    {TaskResultStatus.SUCCESSFUL, TaskResultStatus.FAILED, EXPIRED, CANCELLED}
)

MAX_ERROR_LENGTH = 300


@dataclass(frozen=True, slots=True, kw_only=True)
class Delivery:
    """Where one notification's delivery is, as the page shows it."""

    status: str  # a TaskResultStatus value, or EXPIRED
    attempts: int = 0
    # One line, "ExceptionClass: message", from the latest failed attempt.
    last_error: str = ""
    ntfy_id: str = ""

    @property
    def label(self) -> str:
        return str(LABELS.get(self.status, self.status.title()))

    @property
    def is_finished(self) -> bool:
        """Whether the status can no longer change (so the row stops polling)."""
        return self.status in FINAL_STATUSES

    @property
    def can_retry(self) -> bool:
        return self.status in {TaskResultStatus.FAILED, CANCELLED}

    @property
    def can_cancel(self) -> bool:
        """Not claimed by a worker yet (waiting, scheduled, or between retries)."""
        return self.status == TaskResultStatus.READY

    @property
    def is_retrying(self) -> bool:
        """Whether an earlier attempt failed and another one is coming."""
        return self.status == TaskResultStatus.READY and bool(self.last_error)


def one_line_error(exception_class_path: str, traceback: str) -> str:
    """Return "ExceptionClass: first line of its message" from a stored error.

    The message is read from the traceback's last line naming the class
    (Python writes ``module.Class: message`` there, ``Class: message`` for
    builtins), so chained causes and multi-line messages do not leak in.
    """
    name = exception_class_path.rpartition(".")[2] or "Error"
    builtin = exception_class_path.removeprefix("builtins.")
    for line in reversed(traceback.splitlines()):
        for prefix in (exception_class_path, builtin):
            if line == prefix:
                return name
            if line.startswith(f"{prefix}: "):
                text = line.removeprefix(f"{prefix}: ").strip()
                if len(text) > MAX_ERROR_LENGTH:
                    text = text[: MAX_ERROR_LENGTH - 1] + "…"
                return f"{name}: {text}"
    return name


def ntfy_id_of(return_value: Any) -> str:
    ntfy_id = return_value.get("id") if isinstance(return_value, dict) else None
    return ntfy_id if isinstance(ntfy_id, str) else ""


def delivery_from_result(result: TaskResult[..., Any]) -> Delivery:
    """Build the Delivery of a TaskResult (from ``get_result()``)."""
    last_error = ""
    if result.errors:
        error = result.errors[-1]
        last_error = one_line_error(error.exception_class_path, error.traceback)
    cancelled = result.status == TaskResultStatus.FAILED and any(
        error.exception_class_path == CANCELLED_ERROR for error in result.errors
    )
    return Delivery(
        status=CANCELLED if cancelled else result.status.value,
        attempts=result.attempts,
        last_error=last_error,
        ntfy_id=(
            ntfy_id_of(result.return_value) if result.status == TaskResultStatus.SUCCESSFUL else ""
        ),
    )


def delivery_of(notification: Notification) -> Delivery:
    """Look up one notification's delivery with the public tasks API."""
    try:
        result = send_notification.get_result(notification.task_result_id)
    except (TaskResultDoesNotExist, TaskResultMismatch):
        return Delivery(status=EXPIRED)
    return delivery_from_result(result)


def deliveries_for(notifications: Iterable[Notification]) -> dict[int, Delivery]:
    """Return each notification's Delivery, by notification id, in one query.

    With another task backend this falls back to ``delivery_of()`` per row.
    """
    notifications = list(notifications)
    backend = send_notification.get_backend()
    if not isinstance(backend, DatabaseBackend):
        return {notification.pk: delivery_of(notification) for notification in notifications}

    result_ids = {
        int(notification.task_result_id)
        for notification in notifications
        if notification.task_result_id.isdigit()
    }
    latest_failure = DBTaskAttempt.objects.filter(
        result=OuterRef("pk"), outcome=DBTaskAttempt.Outcome.FAILED
    ).order_by("-number")
    rows = (
        DBTaskResult.objects.using(backend.db_alias)
        .filter(
            pk__in=result_ids,
            backend_name=backend.alias,
            task_path=send_notification.module_path,
        )
        .annotate(
            error_class=Subquery(latest_failure.values("exception_class_path")[:1]),
            error_traceback=Subquery(latest_failure.values("traceback")[:1]),
        )
        .only("pk", "status", "attempt_count", "return_value", "cancelled_at")
    )
    by_id = {str(row.pk): row for row in rows}
    return {
        notification.pk: delivery_from_row(by_id.get(notification.task_result_id))
        for notification in notifications
    }


def delivery_from_row(row: DBTaskResult | None) -> Delivery:
    """Build the Delivery of a row read by ``deliveries_for()``, or EXPIRED if missing."""
    if row is None:
        return Delivery(status=EXPIRED)
    # deliveries_for() annotated the row with its latest failure; django-stubs
    # loses annotate()'s type when a custom QuerySet's rows are iterated.
    failure = cast("WithAnnotations[DBTaskResult, LatestFailure]", row)
    status = TaskResultStatus(row.status)
    return Delivery(
        status=CANCELLED if row.cancelled_at else status.value,
        attempts=row.attempt_count,
        last_error=(
            one_line_error(failure.error_class, failure.error_traceback or "")
            if failure.error_class
            else ""
        ),
        ntfy_id=ntfy_id_of(row.return_value) if status == TaskResultStatus.SUCCESSFUL else "",
    )


def with_progress(
    notifications: QuerySet[Notification],
) -> QuerySet[Notification, tuple[str | None, int | None]]:
    """(status, attempts) of each notification's delivery, as ``delivery_of()`` says them.

    One statement: subqueries read the notification's ``DBTaskResult`` row,
    with no ``TaskResult`` built. A cancelled task shows as CANCELLED (as in
    ``delivery_from_row()``), a missing one as None (the caller's EXPIRED).
    """
    # task_result_id is text, the result's pk a number. Only text like
    # str(pk) is cast (at most 18 digits: always a valid bigint), so anything
    # else matches no result, never a SQL error. \A...\Z, not ^...$: SQLite's
    # REGEXP is Python's re, where $ also matches before a final newline.
    result_pk = Case(
        When(
            task_result_id__regex=r"\A[1-9][0-9]{0,17}\Z",
            then=Cast("task_result_id", BigIntegerField()),
        )
    )
    result = DBTaskResult.objects.filter(
        pk=OuterRef("result_pk"),
        backend_name=send_notification.backend,
        task_path=send_notification.module_path,
    )
    shown_status = Case(When(cancelled_at__isnull=False, then=Value(CANCELLED)), default="status")
    return (
        notifications.annotate(result_pk=result_pk)
        .annotate(
            status=Subquery(result.values(shown=shown_status)),
            attempts=Subquery(result.values("attempt_count")),
        )
        .values_list("status", "attempts")
    )


# Built once and filtered per poll, as a class-based view's ``queryset`` is:
# resolving those expressions takes the ORM longer than running the query.
PROGRESS = with_progress(Notification.objects.all())


def progress_of(pk: int, *, owner: User) -> tuple[str, int] | None:
    """Return (status, attempts) of ``owner``'s notification ``pk``; None if they have none.

    The two fields of ``delivery_of()`` that the poll compares, in one query
    on the database backend (``PROGRESS``); with another backend, or the
    task table in another database, through ``delivery_of()``.
    """
    backend = send_notification.get_backend()
    if not isinstance(backend, DatabaseBackend) or backend.db_alias != PROGRESS.db:
        notification = Notification.objects.filter(pk=pk, owner=owner).first()
        if notification is None:
            return None
        delivery = delivery_of(notification)
        return delivery.status, delivery.attempts

    try:
        status, attempts = PROGRESS.get(pk=pk, owner=owner)
    except Notification.DoesNotExist:
        return None
    if status is None or attempts is None:  # no result row (purged by the retention policy, say)
        return EXPIRED, 0
    return status, attempts
