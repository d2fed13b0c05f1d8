"""The page's live channel: which rows changed, and when to ask again.

One request a page, however many rows it shows: the page sends what each
unfinished row shows (its ``progress``, from ``dbtasks.progress``), one query
reads them all back, and only rows that differ are sent back. ``pace()``
sets the rhythm from what is due, so a page of rows scheduled for later
stays quiet until the earliest is due.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from collections.abc import Mapping
from datetime import datetime
from typing import cast

from django.contrib.auth.models import User
from django.db.models import QuerySet
from django.utils import timezone

from dbtasks.progress import with_progress
from dbtasks.results import State
from messagecenter.models import Notification
from messagecenter.tasks import send_notification

# The response header that says, in seconds, when to poll next.
HEADER = "Poll-After"
# While something is queued or running: about what a person notices.
BUSY = 1.0
# The longest wait between polls while something is scheduled (the page
# also polls as soon as it is shown again, see app.js).
LONGEST = 600.0
# A page shows 20 rows; more is not a page.
MAX_ROWS = 100


def parse_seen(values: Iterable[str]) -> dict[int, str]:
    """``["12.345:READY:0", ...]`` as {notification id: progress}; malformed ones dropped."""
    seen = {}
    for value in values:
        pk, _, progress = value.partition(".")
        if pk.isascii() and pk.isdigit() and len(pk) < 19 and len(progress) < 100:
            seen[int(pk)] = progress
        if len(seen) >= MAX_ROWS:
            break
    return seen


@functools.cache
def _progress_query() -> QuerySet[Notification, tuple[int, str | None, datetime | None]]:
    # Built once and filtered per poll, as a class-based view's ``queryset``
    # is: resolving the expressions takes the ORM longer than the query runs.
    annotated = with_progress(
        Notification.objects.all(),
        "task_result_id",
        backend=send_notification.backend,
        task=send_notification,
    )
    # django-stubs cannot see the annotations with_progress() adds: the cast
    # says what they are.
    return cast(
        "QuerySet[Notification, tuple[int, str | None, datetime | None]]",
        # The stubs take "progress" for an unknown field.
        annotated.values_list("pk", "progress", "progress_due"),  # type: ignore[misc]
    )


def progress(
    *, owner: User, pks: Mapping[int, str] | Iterable[int]
) -> list[tuple[int, str, datetime | None]]:
    """(id, progress, due) of ``owner``'s notifications among ``pks``, in one query.

    A notification whose result is gone reads "" (what an expired row shows).
    """
    rows = _progress_query().filter(owner=owner, pk__in=list(pks))
    return [(pk, text or "", due) for pk, text, due in rows]


def pace(rows: Iterable[tuple[str, datetime | None]], now: datetime | None = None) -> float | None:
    """Seconds until polling is worth it again, from (progress, due) pairs; None: never."""
    now = now or timezone.now()
    wait: float | None = None
    for text, due in rows:
        state = text.split(":")[1] if text.count(":") == 2 else ""
        if state in (State.READY, State.RUNNING, State.BLOCKED):
            return BUSY
        if state == State.SCHEDULED and due is not None:
            until = max(BUSY, (due - now).total_seconds())
            wait = until if wait is None else min(wait, until)
    return None if wait is None else min(wait, LONGEST)
