"""Channel tokens at rest: the database holds ciphertext, the worker the token.

The column is read with SQL, as a database dump would show it. A token no
configured key can open fails its delivery clearly (never an empty token
sent, never a 500 on the pages); the migration encrypts existing tokens and
``rotate_channel_tokens`` moves them to a new key.
"""

from __future__ import annotations

import io
import logging

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.tasks import TaskResultStatus

from messagecenter.channels import Channel
from messagecenter.models import Notification
from messagecenter.tasks import send_notification
from tests.conftest import run_worker
from tests.deliveries import send_id

pytestmark = pytest.mark.django_db(transaction=True)

TOKEN = "tk_AgQdq7mVBoFD37zQVN29RhuMzNIz"


def stored_column(channel_pk: int) -> str:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT token_encrypted FROM messagecenter_channel WHERE id = %s", [channel_pk]
        )
        (value,) = cursor.fetchone()
    return value


@pytest.fixture
def key(settings):
    settings.CHANNEL_TOKEN_KEYS = [Fernet.generate_key().decode()]
    return settings.CHANNEL_TOKEN_KEYS[0]


def add_channel(client, **fields) -> Channel:
    data = {"name": "Phone", "server_url": "", "topic": "alices-phone", "token": TOKEN, **fields}
    response = client.post("/channels/", data)
    assert response.status_code == 302, response.content.decode()
    return Channel.objects.get(name=data["name"])


def test_the_stored_column_is_not_the_token(signed_in, key):
    channel = add_channel(signed_in)
    stored = stored_column(channel.pk)
    assert stored
    assert TOKEN not in stored
    assert Fernet(key.encode()).decrypt(stored.encode()).decode() == TOKEN
    assert Channel.objects.get(pk=channel.pk).token == TOKEN


def test_the_worker_sends_the_decrypted_token_and_logs_none_of_it(signed_in, key, ntfy, caplog):
    channel = add_channel(signed_in)
    signed_in.post("/", {"message": "Hello", "priority": "3", "channels": channel.pk})
    with caplog.at_level(logging.DEBUG):
        run_worker()
    (request,) = ntfy.requests
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert TOKEN not in caplog.text


def test_a_token_no_key_can_open_fails_clearly_and_the_pages_still_work(
    signed_in, settings, key, ntfy
):
    channel = add_channel(signed_in)
    settings.CHANNEL_TOKEN_KEYS = [Fernet.generate_key().decode()]  # the old key is lost

    page = signed_in.get(f"/channels/{channel.pk}/")
    assert page.status_code == 200
    assert "unreadable with the current key" in page.content.decode()

    signed_in.post("/", {"message": "Hello", "priority": "3", "channels": channel.pk})
    run_worker()
    notification = Notification.objects.get()
    result = send_notification.get_result(send_id(notification))
    assert result.status == TaskResultStatus.FAILED
    assert result.attempts == 1  # permanent: another attempt cannot find the key
    error = result.errors[-1].traceback
    assert "The access token of channel 'Phone' cannot be decrypted" in error
    assert not ntfy.requests  # never sent without its token


def test_the_migration_encrypts_existing_tokens_and_back(alice):
    executor = MigrationExecutor(connection)
    before = [("messagecenter", "0003_throttle")]
    executor.migrate(before)
    old_apps = executor.loader.project_state(before).apps
    OldChannel = old_apps.get_model("messagecenter", "Channel")
    pk = OldChannel.objects.create(owner_id=alice.pk, name="Old", topic="old", token=TOKEN).pk
    OldChannel.objects.create(owner_id=alice.pk, name="No token", topic="none", token="")

    executor = MigrationExecutor(connection)
    latest = executor.loader.graph.leaf_nodes("messagecenter")
    executor.migrate(latest)
    assert TOKEN not in stored_column(pk)
    assert Channel.objects.get(pk=pk).token == TOKEN
    assert Channel.objects.get(name="No token").token_encrypted == ""

    # Back again: the plain column gets the token back.
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    old_apps = MigrationExecutor(connection).loader.project_state(before).apps
    assert old_apps.get_model("messagecenter", "Channel").objects.get(pk=pk).token == TOKEN
    # Forward to the latest migrations again (not just 0005): the tests that
    # run next need every table.
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())


def test_rotate_channel_tokens_moves_every_token_to_the_first_key(signed_in, settings, key):
    channel = add_channel(signed_in)
    new_key = Fernet.generate_key().decode()
    settings.CHANNEL_TOKEN_KEYS = [new_key, key]
    out = io.StringIO()
    call_command("rotate_channel_tokens", stdout=out)
    assert "Encrypted 1 token(s) again" in out.getvalue()
    settings.CHANNEL_TOKEN_KEYS = [new_key]
    assert Channel.objects.get(pk=channel.pk).token == TOKEN


def test_rotate_channel_tokens_names_the_channels_it_cannot_open(signed_in, settings, key):
    channel = add_channel(signed_in)
    settings.CHANNEL_TOKEN_KEYS = [Fernet.generate_key().decode()]
    with pytest.raises(CommandError, match=rf"channel ids {channel.pk}\b"):
        call_command("rotate_channel_tokens")
