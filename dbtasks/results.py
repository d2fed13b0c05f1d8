"""Read many results at once: what a page of tasks shows, in a bounded number of queries.

Django's ``task.get_result(id)`` reads one result (two queries: the row and
its attempts). A page that lists fifty tasks needs more than a ``TaskResult``
says (when the next attempt is due, how many attempts are allowed, whether
it was cancelled) and cannot afford a hundred queries. This module is the
public read side for that:

- ``get_results(ids)`` returns a ``ResultSummary`` per id found: one query
  whatever the number of ids, two with ``history=True``. The backend has the
  same as a method, ``DatabaseBackend.get_results(ids)``.
- ``state_of(row, now)``: the finer ``State`` of a row.

What a live page polls (``with_progress``, ``progress_of``, ``live_workers``)
is in ``dbtasks/progress.py``.

It imports nothing from your app, and your app need not import dbtasks models.
"""

from __future__ import annotations

import enum
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING
from typing import Any
from typing import TypedDict
from typing import cast

from django.db.models import OuterRef
from django.db.models import QuerySet
from django.db.models import Subquery
from django.utils import timezone

from dbtasks.backend import DatabaseBackend
from dbtasks.backend import parse_result_id
from dbtasks.compat import Task
from dbtasks.compat import TaskError
from dbtasks.compat import TaskResultStatus
from dbtasks.compat import task_backends
from dbtasks.models import DBTaskAttempt
from dbtasks.models import DBTaskResult

if TYPE_CHECKING:
    from django_stubs_ext import WithAnnotations


class State(enum.StrEnum):
    """Where a task is, finer than Django's four statuses."""

    SCHEDULED = "SCHEDULED"  # waits for its time: run_after, or a retry's backoff
    BLOCKED = "BLOCKED"  # waits on other tasks or a limit
    READY = "READY"  # due: the next free worker takes it
    RUNNING = "RUNNING"
    SUCCESSFUL = "SUCCESSFUL"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"  # called off before it ran (Django's status: FAILED)

    @property
    def is_finished(self) -> bool:
        return self in (State.SUCCESSFUL, State.FAILED, State.CANCELLED)


@dataclass(frozen=True, slots=True, kw_only=True)
class Attempt:
    """One finished run of a task."""

    number: int
    worker_id: str
    started_at: datetime
    stopped_at: datetime
    succeeded: bool
    error: TaskError | None  # None when it succeeded


@dataclass(frozen=True, slots=True, kw_only=True)
class ResultSummary:
    """One task result as a page shows it; ``get_results()`` builds these."""

    id: str
    task_path: str
    queue_name: str
    status: TaskResultStatus  # what Django's TaskResult.status says
    state: State  # dbtasks' finer state
    attempts: int  # runs started so far, the current one included
    max_attempts: int  # from the policy: the task's override, or its queue's
    last_error: TaskError | None  # of the latest failed attempt, or the cancellation
    enqueued_at: datetime
    run_after: datetime | None
    available_after: datetime  # when it may run next (the next try, while waiting)
    started_at: datetime | None
    last_attempted_at: datetime | None
    finished_at: datetime | None
    cancelled_at: datetime | None
    return_value: Any
    history: tuple[Attempt, ...] | None = None  # with get_results(..., history=True)

    @property
    def is_finished(self) -> bool:
        return self.state.is_finished

    @property
    def is_retrying(self) -> bool:
        """Waiting for another attempt after a failed one."""
        return not self.is_finished and self.state != State.RUNNING and self.last_error is not None


def get_backend(backend: DatabaseBackend | str = "default") -> DatabaseBackend:
    """Return the dbtasks backend with this alias (or the one given)."""
    found = task_backends[backend] if isinstance(backend, str) else backend
    if not isinstance(found, DatabaseBackend):
        raise TypeError(f"{found!r} is not a dbtasks DatabaseBackend.")
    return found


class LatestFailure(TypedDict):
    """What ``get_results()`` annotates each row with: its latest failed attempt."""

    error_class: str | None
    error_traceback: str | None


def _latest_failure() -> QuerySet[DBTaskAttempt]:
    return DBTaskAttempt.objects.filter(
        result=OuterRef("pk"), outcome=DBTaskAttempt.Outcome.FAILED
    ).order_by("-number")


def get_results(
    ids: Iterable[str],
    *,
    backend: DatabaseBackend | str = "default",
    task: Task[Any, Any] | None = None,
    history: bool = False,
) -> dict[str, ResultSummary]:
    """Return a ``ResultSummary`` for each of ``ids`` that exists, by id.

    One query (two with ``history``). Ids that are not results of this
    backend (purged, malformed, another backend's, or not of ``task`` when
    given) are simply absent: look them up with ``.get(id)``.
    """
    backend = get_backend(backend)
    pks = {pk for pk in map(parse_result_id, ids) if pk is not None}
    if not pks:
        return {}
    rows = DBTaskResult.objects.using(backend.db_alias).filter(
        pk__in=pks, backend_name=backend.alias
    )
    if task is not None:
        rows = rows.filter(task_path=task.module_path)
    rows = rows.annotate(
        error_class=Subquery(_latest_failure().values("exception_class_path")[:1]),
        error_traceback=Subquery(_latest_failure().values("traceback")[:1]),
    ).defer("arguments")
    rows_list = list(rows)
    attempts: dict[int, list[Attempt]] | None = None
    if history:
        attempts = defaultdict(list)
        for attempt in DBTaskAttempt.objects.using(backend.db_alias).filter(
            result__in=[row.pk for row in rows_list]
        ):
            attempts[attempt.result_id].append(_attempt(attempt))
    now = timezone.now()
    return {
        str(row.pk): _summary(row, backend, now, None if attempts is None else attempts[row.pk])
        for row in rows_list
    }


def _attempt(attempt: DBTaskAttempt) -> Attempt:
    return Attempt(
        number=attempt.number,
        worker_id=attempt.worker_id,
        started_at=attempt.started_at,
        stopped_at=attempt.stopped_at,
        succeeded=not attempt.is_failure,
        error=attempt.to_task_error() if attempt.is_failure else None,
    )


def state_of(row: DBTaskResult, now: datetime) -> State:
    """The finer state of a row: SCHEDULED while it waits for its time.

    A row with a concurrency limit waits for its time BLOCKED (without a
    slot): it reads SCHEDULED too until then, and BLOCKED once only a slot
    is missing.
    """
    if row.cancelled_at is not None:
        return State.CANCELLED
    if row.status in (State.READY, State.SCHEDULED):
        return State.SCHEDULED if row.available_after > now else State.READY
    if row.status == State.BLOCKED and row.concurrency_key and row.available_after > now:
        return State.SCHEDULED
    return State(row.status)


def _summary(
    row: DBTaskResult, backend: DatabaseBackend, now: datetime, history: list[Attempt] | None
) -> ResultSummary:
    # get_results() annotated the row with its latest failure; django-stubs
    # loses annotate()'s type when a custom QuerySet's rows are iterated.
    failure = cast("WithAnnotations[DBTaskResult, LatestFailure]", row)
    last_error = None
    if failure.error_class:
        last_error = TaskError(
            exception_class_path=failure.error_class,
            traceback=failure.error_traceback or "",
        )
    cancellation = row.cancellation_errors()
    if cancellation:
        last_error = cancellation[0]
    return ResultSummary(
        id=str(row.pk),
        task_path=row.task_path,
        queue_name=row.queue_name,
        status=row.public_status,
        state=state_of(row, now),
        attempts=row.attempt_count,
        max_attempts=backend.config.policy(row.queue_name, row.task_path).max_attempts,
        last_error=last_error,
        enqueued_at=row.enqueued_at,
        run_after=row.run_after,
        available_after=row.available_after,
        started_at=row.started_at,
        last_attempted_at=row.last_attempted_at,
        finished_at=row.finished_at,
        cancelled_at=row.cancelled_at,
        return_value=row.return_value,
        history=None if history is None else tuple(history),
    )
