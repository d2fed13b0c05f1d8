"""The page's live channel: which rows changed, and when to ask again (``poll``, the view).

One request a page, however many rows it shows: the page sends what each
unfinished row shows (its ``progress``, from ``dbtasks.progress``), one query
reads them all back, and only rows that differ are sent back. ``pace()``
sets the rhythm from what is due, so a page of rows scheduled for later
stays quiet until the earliest is due.
"""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.contrib.auth.decorators import login_not_required
from django.contrib.auth.models import User
from django.db.models import QuerySet
from django.http import HttpRequest
from django.http import HttpResponse
from django.http import HttpResponseForbidden
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from dbtasks.progress import with_progress
from dbtasks.results import State
from messagecenter import live_tokens
from messagecenter.compiled import CompiledQuery
from messagecenter.models import Notification
from messagecenter.results import deliveries_for
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


# What the poll selects: the row's progress, and its owner's columns (a join
# on primary keys), so the poll's token is checked without a query of its
# own (live_tokens.Pass.holds).
COLUMNS = (
    "pk",
    "progress",
    "progress_due",
    "owner__password",
    "owner__is_active",
    "owner__live_key__key",
)


def _progress_query(values: list[int]) -> QuerySet[Notification, dict[str, Any]]:
    """Notifications of the user ``values[0]`` among the ids ``values[1:]``, with their progress."""
    annotated = with_progress(
        Notification.objects.filter(owner_id=values[0], pk__in=values[1:]),
        "task_result_id",
        backend=send_notification.backend,
        task=send_notification,
    )
    rows: QuerySet[Notification, dict[str, Any]] = annotated.order_by().values(*COLUMNS)
    return rows


# Compiled once per number of rows: the ORM takes longer to write this SQL
# than the database takes to run it (compiled.py).
_PROGRESS = CompiledQuery(_progress_query)


@dataclass(frozen=True, slots=True)
class Owner:
    password: str
    is_active: bool
    key: str | None


@dataclass(frozen=True, slots=True)
class Polled:
    """What one poll read: each row's (id, progress, due), and its owner as the token sees it."""

    rows: list[tuple[int, str, datetime | None]]
    owner: Owner | None  # None: the user does not exist


def progress(*, owner_id: int, pks: Mapping[int, str] | Iterable[int]) -> Polled:
    """The progress of ``owner_id``'s notifications among ``pks``, and that owner: one query.

    A notification whose result is gone reads "" (what an expired row shows).
    (A second query reads the owner when none of ``pks`` is theirs.)
    """
    ids = list(pks)
    found = _PROGRESS.rows([owner_id, *ids], using=Notification.objects.db) if ids else []
    if found:
        first = found[0]
        owner: Owner | None = Owner(
            first["owner__password"], first["owner__is_active"], first["owner__live_key__key"]
        )
    else:
        users = User.objects.filter(pk=owner_id)
        row = users.values_list("password", "is_active", "live_key__key").first()
        owner = None if row is None else Owner(*row)
    rows = [(row["pk"], row["progress"] or "", row["progress_due"]) for row in found]
    return Polled(rows, owner)


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


@login_not_required  # the live token authenticates it instead (live_tokens.py)
@require_GET
def poll(request: HttpRequest) -> HttpResponse:
    """The page's one live channel: every row that changed since the page last saw it.

    The page sends ``?seen=<id>.<progress>`` for each unfinished row it
    shows, and its live token (``live_tokens.py``) in a header: no session
    is read. One query reads the progress of all of them with their owner
    (``progress()``), which checks the token; when nothing changed the
    answer is 204 No Content. Either way the ``Poll-After`` header says, in
    seconds, when asking again is worth it: soon while something is queued
    or running, at the earliest due time when everything is scheduled,
    never when nothing is left to change. A token that is missing, expired
    or no longer valid (its user signed out, changed password, or was
    deactivated) gets 403: the page reloads.
    """
    token = live_tokens.read(request)
    if token is None:
        return HttpResponseForbidden("Sign in again.", content_type="text/plain")
    seen = parse_seen(request.GET.getlist("seen"))
    polled = progress(owner_id=token.user_id, pks=seen)
    owner = polled.owner
    if owner is None or not token.holds(
        password=owner.password, is_active=owner.is_active, key=owner.key
    ):
        return HttpResponseForbidden("Sign in again.", content_type="text/plain")
    changed = [pk for pk, progress, _ in polled.rows if progress != seen[pk]]
    if changed:
        # The rows' templates ask for the user (staff see a link to /ops/):
        # the token's, never the session's.
        request.user = User.objects.get(pk=token.user_id)
        notifications = list(
            Notification.objects.filter(owner_id=token.user_id, pk__in=changed).order_by(
                "-created_at", "-id"
            )
        )
        deliveries = deliveries_for(notifications)
        context = {"rows": [(n, deliveries[n.pk]) for n in notifications]}
        response = render(request, "messagecenter/index.html#changed-rows", context)
    else:
        response = HttpResponse(status=204)
    delay = pace((progress, due) for _, progress, due in polled.rows)
    if delay is not None:
        response[HEADER] = f"{delay:g}"
    return response
