"""The page's live channel: which rows changed, and when to ask again (``poll``, the view).

One request a page, however many rows it shows: the page sends a
fingerprint of what each unfinished row shows (its ``progress``: its
report's and each channel's, from ``dbtasks.progress``), one query reads
them all back (a row per channel, with its report's), and only rows that
differ are sent back. ``pace()``
sets the rhythm from what is due, so a page of rows scheduled for later
stays quiet until the earliest is due. On Postgres a poll that found
nothing changed is answered again from memory, without the query, until a
change it depends on is heard (``live_memo.py``).
"""

from __future__ import annotations

import hashlib
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
from messagecenter import live_listener
from messagecenter import live_memo
from messagecenter import live_tokens
from messagecenter import results  # a module: results reads live.fingerprint
from messagecenter.compiled import CompiledQuery
from messagecenter.models import Destination
from messagecenter.models import Notification
from messagecenter.tasks import report_delivery
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


def fingerprint(progress: str) -> str:
    """What the page holds of a row's progress: short whatever the number of channels
    (a poll's URL must fit gunicorn's request line)."""
    return hashlib.blake2s(progress.encode(), digest_size=8).hexdigest()


def parse_seen(values: Iterable[str]) -> dict[int, str]:
    """``["12.9f86d081884c7d65", ...]`` as {notification id: fingerprint}; bad ones dropped."""
    seen = {}
    for value in values:
        pk, _, progress = value.partition(".")
        if pk.isascii() and pk.isdigit() and len(pk) < 19 and len(progress) < 100:
            seen[int(pk)] = progress
        if len(seen) >= MAX_ROWS:
            break
    return seen


# What the poll selects, a row per channel: the notification's, its report's
# progress and this channel's, and its owner's columns (joins on primary
# keys), so the poll's token is checked without a query of its own
# (live_tokens.Pass.holds).
COLUMNS = (
    "notification_id",
    "report_progress",
    "report_progress_due",
    "progress",
    "progress_due",
    "notification__owner__password",
    "notification__owner__is_active",
    "notification__owner__live_key__key",
)


def _progress_query(values: list[int]) -> QuerySet[Destination, dict[str, Any]]:
    """The channels of the user ``values[0]``'s notifications ``values[1:]``, with progress.

    The report's progress (its result id is the notification's, joined on
    its key), then each channel's own.
    """
    destinations = Destination.objects.filter(
        notification__owner_id=values[0], notification_id__in=values[1:]
    )
    with_report = with_progress(
        destinations,
        "notification__task_result_id",
        backend=report_delivery.backend,
        task=report_delivery,
        prefix="report_",
    )
    annotated = with_progress(
        with_report, "task_result_id", backend=send_notification.backend, task=send_notification
    )
    # In the order deliveries_for() lists them, so both write the same text.
    rows: QuerySet[Destination, dict[str, Any]] = annotated.order_by(
        "notification_id", "pk"
    ).values(*COLUMNS)
    return rows


# Compiled once per number of rows: the ORM takes longer to write this SQL
# than the database takes to run it (compiled.py).
_PROGRESS = CompiledQuery(_progress_query, name="messagecenter_live_poll")


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

    A row's progress is ``MessageDelivery.progress``: the report's, then each
    channel's (a result that is gone reads ""); due is the earliest of those
    waiting for their time. (A second query reads the owner when none of
    ``pks`` is theirs.)
    """
    ids = list(pks)
    found = _PROGRESS.rows([owner_id, *ids], using=Destination.objects.db) if ids else []
    if found:
        first = found[0]
        owner: Owner | None = Owner(
            first["notification__owner__password"],
            first["notification__owner__is_active"],
            first["notification__owner__live_key__key"],
        )
    else:
        users = User.objects.filter(pk=owner_id)
        user = users.values_list("password", "is_active", "live_key__key").first()
        owner = None if user is None else Owner(*user)
    texts: dict[int, list[str]] = {}
    due: dict[int, datetime | None] = {}
    for row in found:
        pk = row["notification_id"]
        if pk not in texts:
            texts[pk] = [row["report_progress"] or ""]
            _add_due(due, pk, row["report_progress"], row["report_progress_due"])
        texts[pk].append(row["progress"] or "")
        _add_due(due, pk, row["progress"], row["progress_due"])
    rows = [(pk, f"{parts[0]}|{' '.join(parts[1:])}", due.get(pk)) for pk, parts in texts.items()]
    return Polled(rows, owner)


def _add_due(
    due: dict[int, datetime | None], pk: int, text: str | None, when: datetime | None
) -> None:
    """Keep ``when`` as ``pk``'s due time if it is the earliest of its scheduled results."""
    if when is not None and state_of(text or "") == State.SCHEDULED:
        earliest = due.get(pk)
        due[pk] = when if earliest is None else min(earliest, when)


def state_of(text: str) -> str:
    """The state in one result's progress text (``"<id>:<state>:<attempts>"``), or ""."""
    return text.split(":")[1] if text.count(":") == 2 else ""


def pace(rows: Iterable[tuple[str, datetime | None]], now: datetime | None = None) -> float | None:
    """Seconds until polling is worth it again, from (progress, due) pairs; None: never.

    A report waiting on its channels (BLOCKED) is no reason to poll: the
    channels say when something will move.
    """
    now = now or timezone.now()
    wait: float | None = None
    for text, due in rows:
        report, _, channels = text.rpartition("|")
        states = [state_of(part) for part in channels.split(" ")]
        if any(state in (State.READY, State.RUNNING, State.BLOCKED) for state in states):
            return BUSY
        if state_of(report) in (State.READY, State.RUNNING):
            return BUSY
        if State.SCHEDULED in (*states, state_of(report)) and due is not None:
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
    # The same poll, from the same page, that found nothing changed: still
    # so unless Postgres said otherwise (live_memo.py), and no query.
    memo = live_listener.active(Destination.objects.db)
    key = (token, tuple(seen.items()))
    if memo is not None and (rows := memo.unchanged(key)) is not None:
        return _paced(HttpResponse(status=204), rows)
    reading = memo.reading() if memo is not None else None
    polled = progress(owner_id=token.user_id, pks=seen)
    owner = polled.owner
    if owner is None or not token.holds(
        password=owner.password, is_active=owner.is_active, key=owner.key
    ):
        return HttpResponseForbidden("Sign in again.", content_type="text/plain")
    changed = [pk for pk, text, _ in polled.rows if fingerprint(text) != seen[pk]]
    if changed:
        # The rows' templates ask for the user (staff see a link to /ops/):
        # the token's, never the session's.
        request.user = User.objects.get(pk=token.user_id)
        notifications = list(
            Notification.objects.filter(owner_id=token.user_id, pk__in=changed).order_by(
                "-created_at", "-id"
            )
        )
        deliveries = results.deliveries_for(notifications)
        context = {"rows": [(n, deliveries[n.pk]) for n in notifications]}
        response = render(request, "messagecenter/index.html#changed-rows", context)
    else:
        response = HttpResponse(status=204)
        if memo is not None and reading is not None:
            names = live_memo.names_of(token.user_id, polled.rows, seen)
            memo.remember(reading, key, names, polled.rows)
    return _paced(response, polled.rows)


def _paced(response: HttpResponse, rows: Iterable[live_memo.Row]) -> HttpResponse:
    """``response`` with its ``Poll-After`` header, from the rows' progress and due times."""
    delay = pace((progress, due) for _, progress, due in rows)
    if delay is not None:
        response[HEADER] = f"{delay:g}"
    return response
