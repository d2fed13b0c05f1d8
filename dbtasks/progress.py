"""What a live page polls: whether a result moved, and whether anything can move it.

The cheap side of the public read API (``dbtasks/results.py`` is the full one):

- ``with_progress(queryset, "field")`` annotates your own rows (a
  ``Notification`` holding a result id, say) with a short ``progress`` text
  that changes whenever the result's state does, and with when it is next
  due: a poll compares it and answers "nothing changed" from that one query.
- ``progress_of(summary)`` is the same text for a ``ResultSummary``.
- ``live_workers(queue_name)`` counts the workers heartbeating for a queue,
  so a page can say *why* nothing moves.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import connections
from django.db.models import BigIntegerField
from django.db.models import Case
from django.db.models import CharField
from django.db.models import F
from django.db.models import Model
from django.db.models import OuterRef
from django.db.models import Q
from django.db.models import QuerySet
from django.db.models import Subquery
from django.db.models import Value
from django.db.models import When
from django.db.models.functions import Cast
from django.db.models.functions import Concat
from django.db.models.functions import Now
from django.db.models.lookups import Exact
from django.db.models.lookups import GreaterThan
from django.utils import timezone

from dbtasks.backend import DatabaseBackend
from dbtasks.compat import Task
from dbtasks.models import DBTaskResult
from dbtasks.models import DBWorker
from dbtasks.results import ResultSummary
from dbtasks.results import State
from dbtasks.results import get_backend


def with_progress[M: Model](
    queryset: QuerySet[M],
    field: str,
    *,
    backend: DatabaseBackend | str = "default",
    task: Task[Any, Any] | None = None,
    prefix: str = "",
) -> QuerySet[M]:
    """Annotate each row of ``queryset`` with its result's ``progress`` and ``progress_due``.

    ``field`` names the column holding the result id (text, as
    ``TaskResult.id``). ``progress`` is a short text, ``"<id>:<state>:<attempts>"``,
    that changes whenever what ``get_results()`` reports changes state
    (including SCHEDULED becoming READY when its time comes); None when the
    result does not exist. ``progress_due`` is its ``available_after``.
    Subqueries, so it costs no extra query; the result table must be in the
    same database as ``queryset``. ``prefix`` goes before the annotations'
    names, so that one queryset can carry several results' progress
    (``prefix="report_"``: ``report_progress`` and ``report_progress_due``).
    """
    backend = get_backend(backend)
    result_pk = _result_pk(field, connections[queryset.db].vendor)
    pk_name = f"{prefix}progress_pk"
    result = DBTaskResult.objects.filter(pk=OuterRef(pk_name), backend_name=backend.alias)
    if task is not None:
        result = result.filter(task_path=task.module_path)
    state = Case(
        When(cancelled_at__isnull=False, then=Value(State.CANCELLED.value)),
        When(
            Q(status__in=[State.READY, State.SCHEDULED]) & Q(available_after__gt=Now()),
            then=Value(State.SCHEDULED.value),
        ),
        # As state_of(): a limited row waiting for its time reads SCHEDULED.
        When(
            Q(status=State.BLOCKED) & ~Q(concurrency_key="") & Q(available_after__gt=Now()),
            then=Value(State.SCHEDULED.value),
        ),
        When(status=State.SCHEDULED, then=Value(State.READY.value)),
        default=F("status"),
        output_field=CharField(),
    )
    progress = Concat(
        Cast("pk", CharField()),
        Value(":"),
        state,
        Value(":"),
        Cast("attempt_count", CharField()),
        output_field=CharField(),
    )
    annotated: QuerySet[M] = queryset.annotate(**{pk_name: result_pk}).annotate(
        **{
            f"{prefix}progress": Subquery(result.values(text=progress)),
            f"{prefix}progress_due": Subquery(result.values("available_after")),
        }
    )
    return annotated


def _result_pk(field: str, vendor: str) -> Case:
    """The result's pk that ``field`` holds as text, or NULL: never a SQL error.

    Only text exactly like ``str(pk)`` of a positive pk is read as one:
    "12" is 12; "012", " 12", "12\\n", "abc" and "-3" match no result.
    """
    as_number = Cast(field, BigIntegerField())
    if vendor == "sqlite":
        # SQLite casts any text without complaint ("12abc" is 12), so a cast
        # that reads back as the same text is a pk. (REGEXP, below, would
        # call Python's re for every row.)
        reads_back = Exact(F(field), Cast(as_number, CharField()))
        return Case(When(reads_back & GreaterThan(as_number, 0), then=as_number))
    # Postgres refuses to cast text that is not a number: only text like
    # str(pk) is cast (at most 18 digits: always a valid bigint).
    # \A...\Z, not ^...$: in Python's re (other databases' REGEXP) $ also
    # matches before a final newline.
    return Case(When(**{f"{field}__regex": r"\A[1-9][0-9]{0,17}\Z"}, then=as_number))


def progress_of(summary: ResultSummary) -> str:
    """The ``progress`` text ``with_progress()`` gives the same result."""
    return f"{summary.id}:{summary.state.value}:{summary.attempts}"


def live_workers(
    queue_name: str, *, backend: DatabaseBackend | str = "default", now: datetime | None = None
) -> int:
    """How many workers have heartbeated recently and take tasks from ``queue_name``."""
    backend = get_backend(backend)
    since = (now or timezone.now()) - backend.config.heartbeat_timeout
    workers = DBWorker.objects.using(backend.db_alias).filter(
        backend_name=backend.alias, heartbeat_at__gte=since
    )
    # A worker's queues: the names it takes, [] for all of the backend's.
    return sum(
        1
        for queues in workers.values_list("queues", flat=True)
        if not queues or queue_name in queues
    )
