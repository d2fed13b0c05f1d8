"""The admin for support: staff see users' channels and notifications, never a token."""

from __future__ import annotations

import pytest

from messagecenter.channels import Channel
from messagecenter.models import Notification
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
