"""The list page and the poll make the same few queries, whatever the data.

The list page never calls ``get_result()`` per row (two queries each): the
results of a page are read in one query. An unchanged poll reads its status
with the notification, in one query (``messagecenter/results.py``).
"""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from dbtasks.models import DBTaskResult
from messagecenter import results
from messagecenter.models import Notification
from messagecenter.results import deliveries_for
from messagecenter.results import delivery_of
from messagecenter.results import progress_of
from messagecenter.views import enqueue_delivery
from tests.conftest import run_worker
from tests.dbtasks.helpers import default_backend
from tests.html import parse
from tests.ntfy_server import Reply

pytestmark = pytest.mark.django_db(transaction=True)

# Session, user, count, the page of notifications, their task results.
LIST_PAGE_QUERIES = 5
# Session, user, the notification with its delivery's status and attempts.
UNCHANGED_POLL_QUERIES = 3


def make_notifications(owner, ntfy, count):
    """``count`` notifications in every state: successful, retried, failed, ready, expired."""
    for number in range(count):
        enqueue_delivery(Notification.objects.create(owner=owner, message=f"n{number}"))
    # Of the first fifth refused (failed at once), one 500 (retried), the rest accepted.
    ntfy.reply_next(*[Reply(status=403)] * (count // 5), Reply(status=500))
    run_worker()
    # Some that have not run yet...
    for number in range(count // 5):
        enqueue_delivery(Notification.objects.create(owner=owner, message=f"later {number}"))
    # ...and one whose result was purged.
    purged = Notification.objects.order_by("id").first()
    assert purged is not None
    DBTaskResult.objects.filter(pk=purged.task_result_id).delete()


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
    notifications = list(Notification.objects.filter(owner=alice))

    with CaptureQueriesContext(connection) as queries:
        bulk = deliveries_for(notifications)
    assert len(queries) == 1

    one_by_one = {notification.pk: delivery_of(notification) for notification in notifications}
    assert bulk == one_by_one
    assert {delivery.status for delivery in bulk.values()} == {
        "READY",
        "SUCCESSFUL",
        "FAILED",
        "EXPIRED",
    }
    assert any(delivery.attempts == 2 for delivery in bulk.values())
    assert all(
        delivery.last_error.startswith("PermanentFailure: ntfy answered 403")
        for delivery in bulk.values()
        if delivery.status == "FAILED"
    )


def test_an_unchanged_poll_makes_one_query_after_session_and_user(
    client, django_user_model, django_assert_num_queries
):
    alice = django_user_model.objects.create_user("alice")
    bob = django_user_model.objects.create_user("bob")
    notification = Notification.objects.create(owner=alice, message="Hi")
    enqueue_delivery(notification)
    url = f"/notifications/{notification.pk}/status/"

    client.force_login(alice)
    with django_assert_num_queries(UNCHANGED_POLL_QUERIES):
        response = client.get(url, {"status": "READY", "attempts": "0"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 204

    # Ownership is checked by that same query: bob's poll is a 404 at the same cost.
    client.force_login(bob)
    with django_assert_num_queries(UNCHANGED_POLL_QUERIES):
        response = client.get(url, {"status": "READY"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 404


def notifications_in_every_state(owner, ntfy) -> dict[str, Notification]:
    """One notification per state the page can show, by a name for that state."""

    def queued(name):
        notification = Notification.objects.create(owner=owner, message=name)
        enqueue_delivery(notification)
        return notification

    def result_row(notification):
        return DBTaskResult.objects.filter(pk=notification.task_result_id)

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
    assert default_backend().cancel(made["cancelled"].task_result_id)
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
        made[f"id {text!r}"] = Notification.objects.create(
            owner=owner, message=text, task_result_id=text
        )
    return made


# What the page shows of each, (status, attempts); any other is EXPIRED, no attempts.
SHOWN = {
    "ready": ("READY", 0),
    "running": ("RUNNING", 1),
    "retried, successful": ("SUCCESSFUL", 2),
    "failed": ("FAILED", 1),
    "failed, waiting to retry": ("READY", 1),
    "cancelled": ("CANCELLED", 0),
}


@pytest.mark.parametrize("backend", ["dbtasks tables", "public API"])
def test_poll_progress_agrees_with_delivery_of(django_user_model, ntfy, monkeypatch, backend):
    alice = django_user_model.objects.create_user("alice")
    bob = django_user_model.objects.create_user("bob")
    notifications = notifications_in_every_state(alice, ntfy)
    if backend == "public API":
        # What progress_of() does with a backend that is not dbtasks.
        monkeypatch.setattr(results, "DatabaseBackend", type("NotThisBackend", (), {}))

    for name, notification in notifications.items():
        delivery = delivery_of(notification)
        with CaptureQueriesContext(connection) as queries:
            progress = progress_of(notification.pk, owner=alice)
        assert progress == (delivery.status, delivery.attempts), name
        assert progress == SHOWN.get(name, ("EXPIRED", 0)), name
        if backend == "dbtasks tables":
            assert len(queries) == 1, name
        # Someone else's notification, or none at all: None (the view's 404).
        assert progress_of(notification.pk, owner=bob) is None, name
    assert progress_of(max(n.pk for n in notifications.values()) + 1, owner=alice) is None
