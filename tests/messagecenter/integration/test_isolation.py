"""One user never sees, polls or retries another's notifications: their ids answer 404."""

from __future__ import annotations

import pytest

from dbtasks.models import DBTaskResult
from messagecenter.models import Notification
from messagecenter.views import enqueue_delivery
from tests.html import parse
from tests.messagecenter.conftest import HTMX


@pytest.fixture
def alices_notification(alice):
    notification = Notification.objects.create(owner=alice, message="Alice secret plan")
    enqueue_delivery(notification)
    return notification


@pytest.fixture
def as_bob(client, bob):
    client.force_login(bob)
    return client


def test_list_shows_only_your_own(as_bob, bob, alices_notification):
    bobs = Notification.objects.create(owner=bob, message="Bob note")
    enqueue_delivery(bobs)

    response = as_bob.get("/")
    rows = parse(response.content).find_all("li.notification")
    assert [row.attrs["id"] for row in rows] == [f"notification-{bobs.pk}"]
    assert "Alice secret plan" not in response.content.decode()
    assert "1 in total" in response.content.decode()


@pytest.mark.parametrize("headers", [{}, HTMX], ids=["plain", "htmx"])
def test_polling_someone_elses_notification_tells_nothing(as_bob, alices_notification, headers):
    n = alices_notification
    for seen in (f"{n.pk}.", f"{n.pk}.{n.task_result_id}:READY:0", f"{n.pk}.x:FAILED:9"):
        response = as_bob.get("/notifications/live/", {"seen": seen}, **headers)
        assert response.status_code == 204
        assert b"secret" not in response.content
    response = as_bob.get(f"/notifications/{n.pk}/attempts/", **headers)
    assert response.status_code == 404
    assert b"secret" not in response.content


@pytest.mark.parametrize("headers", [{}, HTMX], ids=["plain", "htmx"])
def test_retrying_someone_elses_notification_is_404(as_bob, alices_notification, headers):
    before = alices_notification.task_result_id
    response = as_bob.post(f"/notifications/{alices_notification.pk}/retry/", **headers)
    assert response.status_code == 404
    alices_notification.refresh_from_db()
    assert alices_notification.task_result_id == before
    assert DBTaskResult.objects.count() == 1


def test_someone_elses_id_and_a_missing_id_look_the_same(as_bob, alices_notification):
    # 404 for both, never 403: an id that is not yours does not exist for you.
    missing = alices_notification.pk + 1000
    for pk in (alices_notification.pk, missing):
        assert as_bob.get(f"/notifications/{pk}/attempts/").status_code == 404
        assert as_bob.post(f"/notifications/{pk}/retry/").status_code == 404


def test_posting_cannot_choose_the_owner(as_bob, bob, alice):
    as_bob.post("/", {"message": "hi", "priority": "3", "owner": alice.pk})
    assert Notification.objects.get().owner == bob


def test_owner_still_sees_their_own(client, alice, alices_notification):
    client.force_login(alice)
    url = f"/notifications/{alices_notification.pk}/attempts/"
    assert client.get(url).status_code == 200
    assert "Alice secret plan" in client.get("/").content.decode()
