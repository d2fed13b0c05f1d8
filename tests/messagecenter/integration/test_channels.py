"""Each user's own channels: private topics, write-only tokens, per-user delivery.

Through the pages as a signed-in user, with a worker delivering to the
stand-in ntfy (which takes any topic, so each user's deliveries can be told
apart by topic).
"""

from __future__ import annotations

import importlib
import re

import pytest
from django.apps import apps
from django.db import connection
from django.tasks import TaskResultStatus

from messagecenter.channels import DEFAULT_CHANNEL_NAME
from messagecenter.channels import Channel
from messagecenter.channels import default_channel
from messagecenter.models import Notification
from messagecenter.tasks import send_notification
from messagecenter.tokens import encrypt
from tests.conftest import run_worker
from tests.deliveries import send_id
from tests.html import parse

pytestmark = pytest.mark.django_db(transaction=True)

TOKEN = "tk_AgQdq7mVBoFD37zQVN29RhuMzNIz"


def result_of(notification: Notification):
    notification.refresh_from_db()
    return send_notification.get_result(send_id(notification))


def test_a_new_user_gets_a_private_random_topic_on_the_default_server(signed_in, alice, bob, ntfy):
    page = signed_in.get("/channels/")
    assert page.status_code == 200
    (channel,) = Channel.objects.filter(owner=alice)
    assert channel.name == DEFAULT_CHANNEL_NAME
    assert channel.server_url == ""  # the default server, read at send time
    assert channel.server == ntfy.url
    assert re.fullmatch(r"[-_A-Za-z0-9]{32}", channel.topic)
    assert channel.topic != default_channel(bob).topic
    assert channel.topic_url in page.content.decode()


def test_add_rename_and_delete_a_channel(signed_in, alice):
    response = signed_in.post(
        "/channels/",
        {"name": "Ops pager", "server_url": "https://ntfy.example.com", "topic": "ops_pager-1"},
    )
    channel = Channel.objects.get(owner=alice, name="Ops pager")
    assert response.status_code == 302
    assert response["Location"] == f"/channels/{channel.pk}/"
    assert channel.server_url == "https://ntfy.example.com/"
    assert channel.topic_url == "https://ntfy.example.com/ops_pager-1"

    response = signed_in.post(
        f"/channels/{channel.pk}/",
        {"name": "Pager", "server_url": channel.server_url, "topic": channel.topic},
    )
    assert response.status_code == 302
    channel.refresh_from_db()
    assert channel.name == "Pager"

    assert signed_in.post(f"/channels/{channel.pk}/delete/").status_code == 302
    assert not Channel.objects.filter(pk=channel.pk).exists()


@pytest.mark.parametrize(
    ("data", "field", "error"),
    [
        ({"name": DEFAULT_CHANNEL_NAME}, "name", "You already have a channel named"),
        ({"topic": "two words"}, "topic", "A topic is 1-64 letters"),
        ({"topic": "x" * 65}, "topic", "at most 64 characters"),
        ({"server_url": "ftp://ntfy.example.com/"}, "server_url", "without a topic"),
        ({"server_url": "https://ntfy.example.com/?a=b"}, "server_url", "without a topic"),
    ],
)
def test_invalid_channels_are_refused_with_a_clear_error(signed_in, alice, data, field, error):
    default_channel(alice)
    valid = {"name": "Second", "server_url": "", "topic": "second-topic"}
    response = signed_in.post("/channels/", valid | data)
    assert response.status_code == 422
    errors = parse(response.content).find(f"#id_{field}_error")
    assert errors is not None, response.content.decode()
    assert error in errors.text
    assert Channel.objects.filter(owner=alice).count() == 1


def test_the_token_is_never_shown_back_only_its_last_four_characters(signed_in, alice):
    channel = Channel.objects.create(
        owner=alice, name="Protected", topic="locked", token_encrypted=encrypt(TOKEN)
    )
    for url in ("/channels/", f"/channels/{channel.pk}/", "/"):
        content = signed_in.get(url).content.decode()
        assert TOKEN not in content
        assert TOKEN[:-4] not in content
    assert f"…{TOKEN[-4:]}" in signed_in.get(f"/channels/{channel.pk}/").content.decode()

    short = Channel.objects.create(
        owner=alice, name="Short", topic="short", token_encrypted=encrypt("tk_12")
    )
    assert short.token_hint == "(saved)"  # four characters would give most of it away

    # Saving with the token field empty keeps the token; "remove" clears it.
    data = {"name": "Protected", "server_url": "", "topic": "locked", "token": ""}
    signed_in.post(f"/channels/{channel.pk}/", data)
    channel.refresh_from_db()
    assert channel.token == TOKEN
    signed_in.post(f"/channels/{channel.pk}/", data | {"clear_token": "on"})
    channel.refresh_from_db()
    assert channel.token == ""


def test_the_subscribe_panel_has_the_topic_links_and_an_inline_qr_code(signed_in, alice, ntfy):
    channel = default_channel(alice)
    content = signed_in.get(f"/channels/{channel.pk}/").content
    page = parse(content)
    assert page.find("#channel-topic").text == channel.topic
    copy_buttons = [b for b in page.find_all("button") if b.attrs.get("data-copy")]
    assert [b.attrs["data-copy"] for b in copy_buttons] == ["channel-topic"]
    links = {a.attrs["href"] for a in page.find("ul.subscribe__links").find_all("a")}
    host = ntfy.url.split("://", 1)[1]
    assert links == {f"ntfy://{host}{channel.topic}?secure=false", channel.topic_url}
    page.find("figure.subscribe__qr").find("svg")
    # Nothing the Content Security Policy would block: no script, no style.
    markup = content.decode().split('<figure class="subscribe__qr">', 1)[1].split("</figure>")[0]
    assert markup.startswith("<svg")
    assert "<script" not in markup
    assert "style=" not in markup


def test_a_test_notification_reaches_the_channel_with_its_token(signed_in, alice, ntfy):
    channel = Channel.objects.create(
        owner=alice, name="Phone", topic="alices-phone", token_encrypted=encrypt(TOKEN)
    )
    response = signed_in.post(f"/channels/{channel.pk}/test/")
    assert response.status_code == 302
    run_worker()
    (request,) = ntfy.requests
    assert request.published["topic"] == "alices-phone"
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    notification = Notification.objects.get(channel=channel)
    assert result_of(notification).status == TaskResultStatus.SUCCESSFUL


def test_each_users_messages_go_to_their_own_topic(client, alice, bob, ntfy):
    for user in (alice, bob):
        client.force_login(user)
        assert client.post("/", {"message": f"from {user}", "priority": "3"}).status_code == 302
    run_worker()
    topics = {r.published["message"]: r.published["topic"] for r in ntfy.requests}
    assert topics == {
        "from alice": default_channel(alice).topic,
        "from bob": default_channel(bob).topic,
    }


def test_the_form_sends_to_the_chosen_channel_and_only_to_ones_own(signed_in, alice, bob, ntfy):
    default_channel(alice)
    chosen = Channel.objects.create(owner=alice, name="Second", topic="alices-second")
    bobs = default_channel(bob)
    form = parse(signed_in.get("/").content).find(".field--channels")
    assert {label.text.strip() for label in form.find_all("label")} >= {
        DEFAULT_CHANNEL_NAME,
        "Second",
    }

    refused = signed_in.post("/", {"message": "Hi", "priority": "3", "channels": bobs.pk})
    assert refused.status_code == 422
    assert not Notification.objects.exists()

    sent = signed_in.post("/", {"message": "Hi", "priority": "3", "channels": chosen.pk})
    assert sent.status_code == 302
    run_worker()
    (request,) = ntfy.requests
    assert request.published["topic"] == "alices-second"


def test_a_notification_whose_channel_was_deleted_fails_at_once_saying_so(signed_in, alice, ntfy):
    channel = Channel.objects.create(owner=alice, name="Gone", topic="gone")
    signed_in.post("/", {"message": "Hi", "priority": "3", "channels": channel.pk})
    channel_id = channel.pk
    channel.delete()
    run_worker()
    result = result_of(Notification.objects.get())
    assert result.status == TaskResultStatus.FAILED
    assert result.attempts == 1  # permanent: not retried
    assert result.errors[-1].traceback.endswith(f"Channel {channel_id} no longer exists.\n")
    assert not ntfy.requests


def test_the_migration_gives_existing_users_a_channel_from_ntfy_url(settings, alice, bob):
    settings.NTFY_URL = "https://ntfy.example.com/shared-alerts"
    settings.NTFY_TOKEN = TOKEN
    kept = Notification.objects.create(owner=alice, message="old")
    migration = importlib.import_module("messagecenter.migrations.0002_channels")

    class SchemaEditor:
        connection = connection  # all the function reads

    migration.give_every_user_a_channel(apps, SchemaEditor())

    for user in (alice, bob):
        (channel,) = Channel.objects.filter(owner=user)
        assert channel.topic_url == "https://ntfy.example.com/shared-alerts"
        assert channel.token == TOKEN
    kept.refresh_from_db()
    assert kept.channel == Channel.objects.get(owner=alice)


def test_without_ntfy_url_the_migration_gives_private_topics(settings, alice, bob):
    settings.NTFY_URL = ""
    migration = importlib.import_module("messagecenter.migrations.0002_channels")

    class SchemaEditor:
        connection = connection

    migration.give_every_user_a_channel(apps, SchemaEditor())
    alices, bobs = (Channel.objects.get(owner=user) for user in (alice, bob))
    assert alices.server_url == bobs.server_url == ""
    assert alices.topic != bobs.topic
    assert alices.token == ""
