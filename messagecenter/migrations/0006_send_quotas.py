"""Send quotas: a user's own limits, overriding SENDS_PER_HOUR and SENDS_PER_DAY."""

from __future__ import annotations

import django.db.models.deletion
from django.conf import settings
from django.db import migrations
from django.db import models


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("messagecenter", "0005_drop_plain_channel_tokens"),
    ]

    operations = [
        migrations.CreateModel(
            name="SendQuota",
            fields=[
                (
                    "user",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE,
                        primary_key=True,
                        related_name="send_quota",
                        serialize=False,
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "per_hour",
                    models.PositiveIntegerField(
                        blank=True,
                        help_text="Notifications per rolling hour. Empty: the default "
                        "(SENDS_PER_HOUR). 0: none at all.",
                        null=True,
                    ),
                ),
                (
                    "per_day",
                    models.PositiveIntegerField(
                        blank=True,
                        help_text="Notifications per rolling 24 hours. Empty: the default "
                        "(SENDS_PER_DAY).",
                        null=True,
                    ),
                ),
                (
                    "note",
                    models.CharField(
                        blank=True, help_text="Why this user has their own limits.", max_length=250
                    ),
                ),
            ],
            options={"verbose_name": "send quota"},
        ),
    ]
