"""The admin for support: staff see users' channels and notifications, never a token."""

from __future__ import annotations

import pytest

from messagecenter.channels import Channel
from messagecenter.models import Notification
from messagecenter.models import SendQuota
from messagecenter.throttle import SIGN_UP_PER_ADDRESS
from messagecenter.throttle import ThrottleCount
from messagecenter.tokens import encrypt

pytestmark = pytest.mark.django_db

TOKEN = "tk_SupportMustNeverSeeThis0042"


@pytest.fixture
def staff(client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("root", password="x"))
    return client


def test_staff_see_a_users_channels_and_notifications_without_the_token(staff, alice):
    channel = Channel.objects.create(
        owner=alice, name="Pager", topic="alice-pager", token_encrypted=encrypt(TOKEN)
    )
    Notification.objects.create(owner=alice, channel=channel, message="disk full")
    pages = [
        staff.get("/admin/messagecenter/channel/"),
        staff.get(f"/admin/messagecenter/channel/{channel.pk}/change/"),
        staff.get("/admin/messagecenter/notification/"),
        staff.get(f"/admin/auth/user/{alice.pk}/change/"),
    ]
    for page in pages:
        assert page.status_code == 200
        assert TOKEN not in page.content.decode()
    assert "alice-pager" in pages[0].content.decode()
    assert "…0042" in pages[1].content.decode()
    assert "Pager" in pages[2].content.decode()


def test_saving_a_channel_in_the_admin_keeps_its_token(staff, alice):
    channel = Channel.objects.create(
        owner=alice, name="Pager", topic="alice-pager", token_encrypted=encrypt(TOKEN)
    )
    data = {"owner": alice.pk, "name": "Renamed", "server_url": "", "topic": "alice-pager"}
    response = staff.post(f"/admin/messagecenter/channel/{channel.pk}/change/", data)
    assert response.status_code == 302
    channel.refresh_from_db()
    assert (channel.name, channel.token) == ("Renamed", TOKEN)


def test_staff_lift_a_block_by_deleting_its_count(staff):
    for _ in range(SIGN_UP_PER_ADDRESS.max_hits):
        SIGN_UP_PER_ADDRESS.hit("203.0.113.9")
    assert SIGN_UP_PER_ADDRESS.wait("203.0.113.9") is not None
    assert staff.get("/admin/messagecenter/throttlecount/").status_code == 200
    ThrottleCount.objects.all().delete()  # what the changelist's delete action does
    assert SIGN_UP_PER_ADDRESS.wait("203.0.113.9") is None


def test_staff_read_a_notification_and_its_failed_delivery_without_the_token(staff, alice):
    channel = Channel.objects.create(
        owner=alice, name="Pager", topic="alice-pager", token_encrypted=encrypt(TOKEN)
    )
    notification = Notification.objects.create(owner=alice, channel=channel, message="disk full")

    page = staff.get(f"/admin/messagecenter/notification/{notification.pk}/change/")

    assert page.status_code == 200
    assert "disk full" in page.content.decode()
    assert TOKEN not in page.content.decode()


def test_staff_see_and_set_a_users_send_quota(staff, alice):
    Notification.objects.create(owner=alice, message="one")
    SendQuota.objects.create(user=alice)

    listing = staff.get("/admin/messagecenter/sendquota/").content.decode()
    response = staff.post(
        f"/admin/messagecenter/sendquota/{alice.pk}/change/",
        {"user": alice.pk, "per_hour": "5", "per_day": "", "note": "pilot customer"},
    )

    assert "alice" in listing
    assert 'class="field-sent_past_hour">1<' in listing
    assert response.status_code == 302
    quota = SendQuota.objects.get(user=alice)
    assert (quota.per_hour, quota.per_day, quota.note) == (5, None, "pilot customer")
