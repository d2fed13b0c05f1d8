"""The plain token column goes: every token is in ``token_encrypted`` now (0004)."""

from __future__ import annotations

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("messagecenter", "0004_encrypt_channel_tokens"),
    ]

    operations = [
        migrations.RemoveField(
            model_name="channel",
            name="token",
        ),
    ]
