"""The list page and the live poll make the same few queries, whatever the data.

The list page never calls ``get_result()`` per row (two queries each): the
results of a page are read in one query (``dbtasks.results.get_results``).
An unchanged poll reads the progress of every row it asks about with the
notifications, in one query (``dbtasks.progress.with_progress``).
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from dbtasks.models import DBTaskResult
from dbtasks.progress import progress_of
from dbtasks.results import get_backend
from dbtasks.results import get_results
from messagecenter import live
from messagecenter import live_tokens
from messagecenter.channels import default_channel
from messagecenter.models import Destination
from messagecenter.models import Notification
from messagecenter.results import deliveries_for
from messagecenter.sending import send
from messagecenter.tasks import send_notification
from tests.conftest import run_worker
from tests.dbtasks.helpers import default_backend
from tests.deliveries import seen as shown
from tests.deliveries import send_id
from tests.html import parse
from tests.messagecenter.conftest import HTMX
from tests.messagecenter.conftest import live_token
from tests.ntfy_server import Reply

pytestmark = pytest.mark.django_db(transaction=True)

# Session, user, count, the page of notifications, their destinations (the
# channels each went to), the task results of both (sends and reports),
# whether a worker is running (asked because some rows are queued), the
# user's channels for the form, and their live key (for the poll's token).
LIST_PAGE_QUERIES = 9
# A row per channel of the notifications, with its send's progress, its
# report's, and its owner (who the token says, checked from that same row):
# no session, no user lookup.
UNCHANGED_POLL_QUERIES = 1


def make_notifications(owner, ntfy, count):
    """``count`` notifications in every state: successful, retried, failed, ready, expired."""
    # Made on a new user's first visit; here, before counting.
    default_channel(owner)
    live_tokens.issue(owner)
    for number in range(count):
        send(Notification.objects.create(owner=owner, message=f"n{number}"))
    # Of the first fifth refused (failed at once), one 500 (retried), the rest accepted.
    ntfy.reply_next(*[Reply(status=403)] * (count // 5), Reply(status=500))
    run_worker()
    # Some that have not run yet...
    for number in range(count // 5):
        send(Notification.objects.create(owner=owner, message=f"later {number}"))
    # ...and one whose result was purged.
    purged = Notification.objects.order_by("id").first()
    assert purged is not None
    DBTaskResult.objects.filter(pk=send_id(purged)).delete()


@pytest.mark.parametrize("count", [5, 50])
def test_list_page_makes_a_bounded_number_of_queries(
    client, django_user_model, ntfy, count, django_assert_max_num_queries
):
    alice = django_user_model.objects.create_user("alice")
    make_notifications(alice, ntfy, count)
    client.force_login(alice)

    with django_assert_max_num_queries(LIST_PAGE_QUERIES):
        response = client.get("/")

    rows = parse(response.content).find_all("li.notification")
    assert len(rows) == min(count + count // 5, 20)
    assert {row.attrs["data-status"] for row in rows} >= {"READY", "SUCCESSFUL"}


def test_bulk_lookup_agrees_with_get_result(django_user_model, ntfy):
    alice = django_user_model.objects.create_user("alice")
    make_notifications(alice, ntfy, 20)
    ids = [send_id(n) for n in Notification.objects.filter(owner=alice)]
    backend = get_backend(send_notification.backend)

    with CaptureQueriesContext(connection) as queries:
        summaries = get_results(ids, task=send_notification)
    assert len(queries) == 1
    with CaptureQueriesContext(connection) as queries:
        with_history = backend.get_results(ids, history=True)
    assert len(queries) == 2

    assert len(summaries) == len(ids) - 1  # the purged one is absent
    for result_id, summary in summaries.items():
        result = send_notification.get_result(result_id)
        assert summary.status == result.status
        assert summary.attempts == result.attempts
        if result.status == "SUCCESSFUL":
            assert summary.return_value == result.return_value
        assert summary.last_error == (result.errors[-1] if result.errors else None)
        assert (
            summary.max_attempts
            == backend.config.policy(result.task.queue_name, result.task.module_path).max_attempts
        )
        history = with_history[result_id].history
        assert history is not None
        assert [attempt.error for attempt in history if attempt.error] == result.errors
        assert [attempt.worker_id for attempt in history] == result.worker_ids
    # Of the later four, two hold alice's slots (settings.TASKS) and two wait BLOCKED.
    assert {summary.state for summary in summaries.values()} == {
        "READY",
        "BLOCKED",
        "SUCCESSFUL",
        "FAILED",
    }
    assert any(summary.attempts == 2 for summary in summaries.values())

    deliveries = deliveries_for(Notification.objects.filter(owner=alice))
    assert {delivery.status for delivery in deliveries.values()} == {
        "READY",
        "BLOCKED",
        "SUCCESSFUL",
        "FAILED",
        "EXPIRED",
    }
    assert all(
        delivery.error_detail.startswith("PermanentFailure: ntfy answered 403")
        for delivery in deliveries.values()
        if delivery.status == "FAILED"
    )


def test_an_unchanged_poll_makes_one_query(client, django_user_model, django_assert_num_queries):
    alice = django_user_model.objects.create_user("alice")
    bob = django_user_model.objects.create_user("bob")
    seen = []
    for number in range(20):
        notification = Notification.objects.create(owner=alice, message=f"Hi {number}")
        send(notification)
        # Past alice's two slots (settings.TASKS) the rest wait BLOCKED.
        status = DBTaskResult.objects.get(pk=send_id(notification)).status
        seen.append(shown(notification, status))

    headers = live_token(alice)
    # On Postgres a connection's first poll of this many rows also prepares
    # the statement (messagecenter/compiled.py): one query more, once.
    client.get("/notifications/live/", {"seen": seen}, **HTMX, **headers)
    with django_assert_num_queries(UNCHANGED_POLL_QUERIES):
        response = client.get("/notifications/live/", {"seen": seen}, **HTMX, **headers)
    assert response.status_code == 204
    assert response["Poll-After"] == "1"

    # Ownership is checked by that same query: bob learns nothing (one more
    # query checks his token, since none of the rows is his).
    headers = live_token(bob)
    with django_assert_num_queries(UNCHANGED_POLL_QUERIES + 1):
        response = client.get("/notifications/live/", {"seen": seen}, **HTMX, **headers)
    assert response.status_code == 204
    assert "Poll-After" not in response


def notifications_in_every_state(owner, ntfy) -> dict[str, Notification]:
    """One notification per state the page can show, by a name for that state."""

    def queued(name):
        notification = Notification.objects.create(owner=owner, message=name)
        send(notification)
        return notification

    def result_row(notification):
        return DBTaskResult.objects.filter(pk=send_id(notification))

    made = {}
    made["failed"] = queued("failed")
    ntfy.reply_next(Reply(status=403))  # refused: FAILED at once, 1 attempt
    run_worker()
    made["retried, successful"] = queued("retried, successful")
    ntfy.reply_next(Reply(status=500))  # then accepted: SUCCESSFUL, 2 attempts
    run_worker()
    made["failed, waiting to retry"] = queued("failed, waiting to retry")
    ntfy.reply_next(Reply(status=403))
    run_worker()
    result_row(made["failed, waiting to retry"]).requeue_failed(timezone.now())  # READY, 1 attempt

    made["ready"] = queued("ready")
    made["running"] = queued("running")
    result_row(made["running"]).update(
        status="RUNNING", worker_id="w1", started_at=timezone.now(), attempt_count=1
    )
    made["cancelled"] = queued("cancelled")
    assert default_backend().cancel(send_id(made["cancelled"]))
    made["purged"] = queued("purged")
    result_row(made["purged"]).delete()
    made["another task's result"] = queued("another task's result")
    result_row(made["another task's result"]).update(task_path="tests.tasks.noop")
    made["another backend's result"] = queued("another backend's result")
    result_row(made["another backend's result"]).update(backend_name="immediate")

    # Ids that are not str(pk) of a result: no result, and never a SQL error.
    existing = made["ready"].task_result_id
    for text in [
        "",
        "abc",
        f"0{existing}",
        f" {existing}",
        f"+{existing}",
        f"{existing}\n",
        f"{existing}.0",
        "-1",
        "0",
        str(10**18),
        str(2**63),
        "9" * 40,
    ]:
        made[f"id {text!r}"] = odd = Notification.objects.create(
            owner=owner, message=text, task_result_id=text
        )
        # Its channel's send holds the same odd id: both reads must cope.
        Destination.objects.create(notification=odd, channel_name="Odd", task_result_id=text)
    return made


# The state each shows; any other has no result (EXPIRED on the page).
SHOWN = {
    "ready": ("READY", 0),
    "running": ("RUNNING", 1),
    "retried, successful": ("SUCCESSFUL", 2),
    "failed": ("FAILED", 1),
    "failed, waiting to retry": ("READY", 1),
    "cancelled": ("CANCELLED", 0),
    "scheduled": ("SCHEDULED", 0),
}


def test_poll_progress_agrees_with_the_summaries(django_user_model, ntfy):
    alice = django_user_model.objects.create_user("alice")
    bob = django_user_model.objects.create_user("bob")
    notifications = notifications_in_every_state(alice, ntfy)
    notifications["scheduled"] = Notification.objects.create(owner=alice, message="later")
    send(notifications["scheduled"], run_after=timezone.now() + timedelta(hours=1))

    deliveries = deliveries_for(notifications.values())
    live.progress(owner_id=alice.pk, pks=deliveries)  # Postgres prepares it on the first
    with CaptureQueriesContext(connection) as queries:
        polled = {pk: text for pk, text, _ in live.progress(owner_id=alice.pk, pks=deliveries).rows}
    assert len(queries) == 1
    for name, notification in notifications.items():
        delivery = deliveries[notification.pk]
        assert polled[notification.pk] == delivery.progress, name
        state, attempts = SHOWN.get(name, ("EXPIRED", 0))
        assert (delivery.status, delivery.attempts) == (state, attempts), name
        channel = delivery.single
        assert channel is not None, name
        if channel.summary is not None:
            assert delivery.progress.endswith(f"|{progress_of(channel.summary)}"), name
    # Someone else's notifications, or none at all: nothing.
    assert live.progress(owner_id=bob.pk, pks=deliveries).rows == []
