"""Channels' access tokens stored encrypted: each existing token is encrypted in place.

The keys are the ones configured now (``messagecenter/tokens.py``); going
back decrypts them with the same keys. The plain column is dropped in the
next migration: on Postgres, rows updated here hold deferred foreign-key
checks that would refuse an ALTER TABLE in the same transaction.
"""

from __future__ import annotations

from typing import Any

from django.db import migrations
from django.db import models

from messagecenter import tokens


def encrypt_tokens(apps: Any, schema_editor: Any) -> None:
    Channel = apps.get_model("messagecenter", "Channel")
    channels = Channel.objects.using(schema_editor.connection.alias).exclude(token="")
    for channel in channels.iterator():
        channel.token_encrypted = tokens.encrypt(channel.token)
        channel.save(update_fields=["token_encrypted"])


def decrypt_tokens(apps: Any, schema_editor: Any) -> None:
    Channel = apps.get_model("messagecenter", "Channel")
    channels = Channel.objects.using(schema_editor.connection.alias).exclude(token_encrypted="")
    for channel in channels.iterator():
        channel.token = tokens.decrypt(channel.token_encrypted, channel=channel.name)
        channel.save(update_fields=["token"])


class Migration(migrations.Migration):
    dependencies = [
        ("messagecenter", "0003_throttle"),
    ]

    operations = [
        migrations.AddField(
            model_name="channel",
            name="token_encrypted",
            field=models.TextField(blank=True, editable=False),
        ),
        migrations.RunPython(encrypt_tokens, decrypt_tokens),
    ]
