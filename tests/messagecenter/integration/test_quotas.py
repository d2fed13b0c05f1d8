"""Each user's send quota: per rolling hour and day, counted from their notifications."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.db import connections
from django.db import transaction
from django.utils import timezone

from messagecenter import quotas
from messagecenter.channels import default_channel
from messagecenter.models import Notification
from messagecenter.models import SendQuota
from tests.conftest import is_postgres
from tests.html import parse
from tests.live import wait_until
from tests.messagecenter.conftest import HTMX

pytestmark = pytest.mark.django_db


def sent_before(owner, count: int, *, ago: timedelta) -> None:
    """``count`` notifications ``owner`` sent ``ago``."""
    at = timezone.now() - ago
    Notification.objects.bulk_create(
        Notification(owner=owner, message=f"earlier {n}", created_at=at) for n in range(count)
    )


def post(client, **headers):
    return client.post("/", {"message": "One more", "priority": "3"}, **headers)


def form_error(response) -> str:
    return " ".join(parse(response.content).find("#notification-form").text.split())


def test_sends_under_the_quota_go_through(signed_in, alice, settings):
    settings.SENDS_PER_HOUR = 3
    sent_before(alice, 2, ago=timedelta(minutes=5))

    assert post(signed_in).status_code == 302
    assert Notification.objects.filter(owner=alice).count() == 3


def test_past_the_hourly_quota_the_form_says_when_to_send_again(signed_in, alice, settings):
    settings.SENDS_PER_HOUR = 3
    sent_before(alice, 1, ago=timedelta(minutes=50))
    sent_before(alice, 2, ago=timedelta(minutes=5))

    response = post(signed_in)

    assert response.status_code == 429
    # The oldest of the three leaves the hour in 10 minutes.
    assert 590 <= int(response["Retry-After"]) <= 600
    error = form_error(response)
    assert "You have sent 3 notifications in the past hour" in error
    assert "You can send the next one in 10 minutes (at " in error
    assert Notification.objects.filter(owner=alice).count() == 3
    # What was typed stays in the form.
    assert parse(response.content).find("#id_message").text == "One more"


def test_the_htmx_form_shows_the_same_error(signed_in, alice, settings):
    settings.SENDS_PER_HOUR = 1
    sent_before(alice, 1, ago=timedelta(minutes=1))

    response = post(signed_in, **HTMX)

    assert response.status_code == 429
    assert "You have sent 1 notification in the past hour" in form_error(response)
    assert "in 59 minutes" in form_error(response)


def test_the_daily_quota_counts_the_past_24_hours(signed_in, alice, settings):
    settings.SENDS_PER_HOUR = 100
    settings.SENDS_PER_DAY = 4
    sent_before(alice, 4, ago=timedelta(hours=20))

    response = post(signed_in)

    assert response.status_code == 429
    assert "in the past 24 hours" in form_error(response)
    assert "about 4 hours" in form_error(response)


def test_a_users_own_quota_overrides_the_default(signed_in, alice, bob, settings):
    settings.SENDS_PER_HOUR = 1
    SendQuota.objects.create(user=alice, per_hour=5)
    sent_before(alice, 1, ago=timedelta(minutes=1))
    sent_before(bob, 1, ago=timedelta(minutes=1))

    assert post(signed_in).status_code == 302
    signed_in.force_login(bob)
    assert post(signed_in).status_code == 429


def test_a_quota_of_zero_refuses_every_send(signed_in, alice):
    SendQuota.objects.create(user=alice, per_hour=0)

    response = post(signed_in)

    assert response.status_code == 429
    assert "Retry-After" not in response
    assert "Your account may not send notifications" in form_error(response)


def test_a_channel_test_counts_and_is_refused_past_the_quota(signed_in, alice, settings):
    settings.SENDS_PER_HOUR = 1
    channel = default_channel(alice)
    sent_before(alice, 1, ago=timedelta(minutes=1))

    response = signed_in.post(f"/channels/{channel.pk}/test/", follow=True)

    assert "You have sent 1 notification in the past hour" in response.content.decode()
    assert Notification.objects.filter(owner=alice).count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_second_send_waits_for_the_first_and_counts_it(alice, settings):
    """Two sends at once: the second waits on the quota's row lock, then counts the first."""
    if not is_postgres():
        pytest.skip("SQLite's IMMEDIATE transactions serialise every writer at BEGIN instead")
    settings.SENDS_PER_HOUR = 1
    outcome: list[object] = []
    first_holds_the_lock = threading.Event()
    release_first = threading.Event()

    def first() -> None:
        try:
            with transaction.atomic():
                quotas.reserve(alice)
                Notification.objects.create(owner=alice, message="first")
                first_holds_the_lock.set()
                release_first.wait(timeout=60)
        finally:
            connections.close_all()

    def second() -> None:
        try:
            with transaction.atomic():
                quotas.reserve(alice)
            outcome.append("sent")
        except quotas.QuotaReached as reached:
            outcome.append(reached)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    threads[0].start()
    assert first_holds_the_lock.wait(timeout=60)
    threads[1].start()
    with connection.cursor() as cursor:

        def second_waits_on_a_lock() -> bool:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            return bool(cursor.fetchone()[0])

        wait_until(second_waits_on_a_lock, timeout=30, what="the second send to wait")
    release_first.set()
    for thread in threads:
        thread.join(timeout=60)

    (result,) = outcome
    assert isinstance(result, quotas.QuotaReached)
    assert result.sent == 1
