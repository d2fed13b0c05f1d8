"""On Postgres an unchanged poll is answered from memory, and every change that matters voids it.

Each test waits for the change to be heard (the poll's answer turns), never
for the clock; the memo's rules themselves are tested in
tests/messagecenter/unit/test_live_memo.py.
"""

from __future__ import annotations

import datetime as dt

import psycopg
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from dbtasks.models import DBTaskResult
from dbtasks.sql.notify import connection_params
from messagecenter import live_listener
from messagecenter import live_tokens
from messagecenter.models import Destination
from messagecenter.models import Notification
from messagecenter.sending import send
from tests.deliveries import seen
from tests.deliveries import send_id
from tests.live import wait_until
from tests.messagecenter.conftest import HTMX

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

LIVE = "/notifications/live/"


@pytest.fixture
def memo(settings):
    """This process's memo, its listener LISTENing; stopped before the database is dropped."""
    settings.LIVE_MEMO = True
    memo = live_listener.active("default")
    assert memo is not None
    try:
        wait_until(memo.reading, timeout=10, what="the live listener to LISTEN")
        yield memo
    finally:
        live_listener.stop("default")


def make_notification(owner, **send_options):
    notification = Notification.objects.create(owner=owner, message="Hi")
    send(notification, **send_options)
    return notification


def poll(client, *rows: str) -> tuple[int, int]:
    """(status, number of queries) of one poll that saw ``rows``."""
    with CaptureQueriesContext(connection) as queries:
        response = client.get(LIVE, {"seen": list(rows)}, **HTMX)
    return response.status_code, len(queries)


def notify(payload: str) -> None:
    """A marker on the triggers' channel, sent now (after everything committed before)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_notify(%s, %s)", [live_listener.CHANNEL, payload])


def settled(memo) -> None:
    """Wait until the listener has heard every change committed so far.

    A change committed before a poll's query but heard after it voids the
    answer (safe: the next poll queries again), and a loaded machine can
    hear late. Notifications arrive in commit order: once a marker sent
    now is heard, so is everything before it.
    """
    reading = wait_until(memo.reading, timeout=10, what="the listener to be listening")
    notify("sync")
    wait_until(
        lambda: (now := memo.reading()) is not None and now.tick > reading.tick,
        timeout=10,
        what="the listener to hear what was committed",
    )


def answered_from_memory(client, memo, *rows: str) -> None:
    settled(memo)
    status, queries = poll(client, *rows)
    assert (status, queries > 0) == (204, True)  # read (its PREPARE too, the first time)
    assert poll(client, *rows) == (204, 0)  # remembered


def test_an_unchanged_poll_is_answered_without_a_query(signed_in, alice, memo):
    notification = make_notification(alice)
    answered_from_memory(signed_in, memo, seen(notification))
    response = signed_in.get(LIVE, {"seen": seen(notification)}, **HTMX)
    assert response.status_code == 204
    assert response["Poll-After"] == "1"  # queued: paced as the query's answer was
    # Another page's rows are another answer.
    other = make_notification(alice)
    assert poll(signed_in, seen(notification), seen(other))[1] > 0


def turns(client, rows: list[str], status: int, *, timeout: float = 10) -> None:
    wait_until(
        lambda: poll(client, *rows)[0] == status,
        timeout=timeout,
        what=f"the poll to answer {status}",
    )


def test_a_workers_change_is_answered_once_committed(signed_in, alice, memo):
    notification = make_notification(alice)
    answered_from_memory(signed_in, memo, seen(notification))
    DBTaskResult.objects.filter(pk=send_id(notification)).update(status="RUNNING", attempt_count=1)
    turns(signed_in, [seen(notification)], 200)
    answered_from_memory(signed_in, memo, seen(notification, "RUNNING", 1))


def test_a_change_elsewhere_leaves_the_answer(signed_in, alice, bob, memo):
    notification, sentinel = make_notification(alice), make_notification(alice)
    bobs = make_notification(bob)
    answered_from_memory(signed_in, memo, seen(notification))
    answered_from_memory(signed_in, memo, seen(sentinel))
    DBTaskResult.objects.filter(pk=send_id(bobs)).update(status="RUNNING")
    DBTaskResult.objects.filter(pk=send_id(sentinel)).update(status="RUNNING")
    # Heard in the order they committed: bob's change has been heard too ...
    turns(signed_in, [seen(sentinel)], 200)
    # ... and the other answer still stands.
    assert poll(signed_in, seen(notification)) == (204, 0)


@pytest.mark.parametrize("how", ["sign-out", "password", "deactivated"])
def test_a_token_that_no_longer_holds_is_refused_at_once(signed_in, alice, memo, how):
    notification = make_notification(alice)
    answered_from_memory(signed_in, memo, seen(notification))
    if how == "sign-out":
        live_tokens.rotate(sender=None, request=None, user=alice)
    elif how == "password":
        alice.set_password("a-new-password-0123")
        alice.save()
    else:
        alice.is_active = False
        alice.save()
    turns(signed_in, [seen(notification)], 403)


def test_a_retry_points_the_row_at_other_results(signed_in, alice, memo):
    notification = make_notification(alice)
    shown = seen(notification)
    answered_from_memory(signed_in, memo, shown)
    other = make_notification(alice)
    Destination.objects.filter(notification=notification).update(task_result_id=send_id(other))
    turns(signed_in, [shown], 200)


def test_a_purged_result_is_a_change(signed_in, alice, memo):
    notification = make_notification(alice)
    answered_from_memory(signed_in, memo, seen(notification))
    DBTaskResult.objects.filter(pk=send_id(notification)).delete()
    turns(signed_in, [seen(notification)], 200)


def test_a_scheduled_row_is_read_again_when_due(signed_in, alice, memo):
    # Due soon, but not before the two polls below, even on a loaded machine.
    notification = make_notification(alice, run_after=timezone.now() + dt.timedelta(seconds=6))
    answered_from_memory(signed_in, memo, seen(notification, "SCHEDULED"))
    # Nothing is written when it falls due: the answer ends at its due time.
    turns(signed_in, [seen(notification, "SCHEDULED")], 200, timeout=15)


def test_polls_query_while_the_listener_is_lost(signed_in, alice, memo):
    notification = make_notification(alice)
    answered_from_memory(signed_in, memo, seen(notification))
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = %s AND datname = current_database()",
            [live_listener.APPLICATION_NAME],
        )
        assert cursor.fetchall() == [(True,)]
    # Lost, then LISTENing on a new connection: each poll queries until an
    # answer is remembered in the new session.
    wait_until(
        lambda: poll(signed_in, seen(notification)) == (204, 1),  # one query
        timeout=10,
        what="the lost listener to void the answer",
    )
    wait_until(
        lambda: poll(signed_in, seen(notification)) == (204, 0),
        timeout=10,
        what="the listener to LISTEN again",
    )


# --- The triggers ---------------------------------------------------------------------


@pytest.fixture
def listener():
    with psycopg.connect(**connection_params("default"), autocommit=True) as listening:
        listening.execute(f"LISTEN {live_listener.CHANNEL}")
        yield listening


def heard(listening, *, until: str) -> list[str]:
    """Every payload heard until a NOTIFY of ``until`` (sent after the change: in order)."""
    notify(until)
    payloads: list[str] = []
    for note in listening.notifies(timeout=10):
        if note.payload == until:
            return payloads
        payloads.append(note.payload)
    raise AssertionError(f"{until!r} was not heard; heard {payloads}")


def test_results_name_only_the_rows_whose_progress_changed(alice, listener):
    notification = make_notification(alice)
    results = DBTaskResult.objects.filter(pk=send_id(notification))
    assert "n" + str(notification.pk) in heard(listener, until="x")  # its channel's insert
    results.update(priority=5)  # the page does not show it
    assert heard(listener, until="x") == []
    results.update(status="RUNNING")
    assert heard(listener, until="x") == ["r" + send_id(notification)]


def test_a_batch_is_named_in_payloads_postgres_accepts(alice, listener):
    make_notification(alice)
    columns = [f.column for f in DBTaskResult._meta.concrete_fields if f.column not in (None, "id")]
    names = ", ".join(connection.ops.quote_name(column) for column in columns)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO dbtasks_dbtaskresult ({names}) SELECT {names} "
            "FROM dbtasks_dbtaskresult, generate_series(1, 3000)"
        )
    heard(listener, until="x")
    ids = {str(pk) for pk in DBTaskResult.objects.values_list("pk", flat=True)}
    DBTaskResult.objects.update(attempt_count=7)
    payloads = heard(listener, until="x")
    assert len(payloads) > 1  # ~15,000 characters of ids
    assert all(payload.startswith("r") and len(payload) < 8000 for payload in payloads)
    assert {pk for payload in payloads for pk in payload[1:].split(",")} == ids
    DBTaskResult.objects.all().delete()
    payloads = heard(listener, until="x")
    assert {pk for payload in payloads for pk in payload[1:].split(",")} == ids
