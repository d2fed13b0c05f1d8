"""The list page makes the same few queries whatever the number of notifications.

It never calls ``get_result()`` per row (two queries each): the results of a
page are read in one query (``messagecenter/results.py``).
"""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from dbtasks.models import DBTaskResult
from messagecenter.models import Notification
from messagecenter.results import deliveries_for
from messagecenter.results import delivery_of
from messagecenter.views import enqueue_delivery
from tests.conftest import run_worker
from tests.html import parse
from tests.ntfy_server import Reply

pytestmark = pytest.mark.django_db(transaction=True)

# Session, user, count, the page of notifications, their task results.
LIST_PAGE_QUERIES = 5


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
    DBTaskResult.objects.filter(
        pk=Notification.objects.order_by("id").first().task_result_id
    ).delete()


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
