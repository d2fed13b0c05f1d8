"""Each user's deliveries are limited and shared fairly (TASKS OPTIONS in settings.py)."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.utils import timezone

from dbtasks.models import BLOCKED
from dbtasks.models import READY
from dbtasks.models import DBTaskResult
from messagecenter.models import Notification
from tests.deliveries import send_id

pytestmark = pytest.mark.django_db

PER_USER = settings.SENDS_AT_ONCE_PER_USER


def send(client, **fields) -> DBTaskResult:
    response = client.post("/", {"message": "Hello", "priority": "3", **fields})
    assert response.status_code == 302, response.content.decode()
    notification = Notification.objects.latest("created_at")
    return DBTaskResult.objects.get(pk=send_id(notification))  # its one channel's send


def test_a_users_sends_past_the_limit_wait_their_turn(client, alice, bob):
    client.force_login(alice)
    rows = [send(client) for _ in range(PER_USER + 1)]
    client.force_login(bob)
    bobs = send(client)

    assert [row.status for row in rows] == [READY] * PER_USER + [BLOCKED]
    assert {row.concurrency_key for row in rows} == {
        f"task:messagecenter.tasks.send_notification:user:{alice.pk}"
    }
    assert bobs.status == READY


def test_urgent_reorders_only_the_senders_own_backlog(client, alice, bob):
    client.force_login(alice)
    for _ in range(PER_USER + 2):
        send(client, priority="5")
    client.force_login(bob)
    bobs = send(client)

    # Alice's urgent sends claim like everyone's; Bob's is READY beside hers.
    ready = list(DBTaskResult.objects.ready(timezone.now()).values_list("pk", "priority"))
    assert len(ready) == PER_USER + 1
    assert (bobs.pk, 0) in ready
    assert set(DBTaskResult.objects.values_list("claim_priority", flat=True)) == {0}
