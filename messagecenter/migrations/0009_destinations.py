"""Each notification goes to one or more channels: a ``Destination`` per channel.

A notification sent before is one sent to one channel: it gets that
destination, holding its task id."""

from __future__ import annotations

from typing import Any

import django.db.models.deletion
from django.conf import settings
from django.db import migrations
from django.db import models


def give_each_notification_its_destination(apps: Any, schema_editor: Any) -> None:
    """A notification sent before is one sent to one channel, with no report yet.

    Its task id moves to the destination: the notification's own is the report's.
    The tasks its history remembers were sends to that channel.
    """
    db = schema_editor.connection.alias
    Notification = apps.get_model("messagecenter", "Notification")
    Destination = apps.get_model("messagecenter", "Destination")
    NotificationTask = apps.get_model("messagecenter", "NotificationTask")
    sent = Notification.objects.using(db).select_related("channel").exclude(task_result_id="")
    for notification in sent.iterator():
        destination = Destination.objects.using(db).create(
            notification=notification,
            channel=notification.channel,
            channel_name=notification.channel.name if notification.channel else "Deleted channel",
            task_result_id=notification.task_result_id,
        )
        tasks = NotificationTask.objects.using(db).filter(notification=notification)
        tasks.update(destination=destination)
    Notification.objects.using(db).update(task_result_id="")


def take_back_the_task_ids(apps: Any, schema_editor: Any) -> None:
    db = schema_editor.connection.alias
    Destination = apps.get_model("messagecenter", "Destination")
    for destination in Destination.objects.using(db).order_by("-pk").iterator():
        destination.notification.task_result_id = destination.task_result_id
        destination.notification.save(update_fields=["task_result_id"])


class Migration(migrations.Migration):
    dependencies = [
        ("messagecenter", "0008_notification_tasks"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="Destination",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("channel_name", models.CharField(max_length=100)),
                ("task_result_id", models.CharField(blank=True, editable=False, max_length=64)),
                ("outcome", models.CharField(blank=True, editable=False, max_length=20)),
                ("error", models.TextField(blank=True, editable=False)),
            ],
            options={
                "ordering": ["notification", "pk"],
            },
        ),
        migrations.AddField(
            model_name="notification",
            name="idempotency_key",
            field=models.UUIDField(blank=True, editable=False, null=True),
        ),
        migrations.AddField(
            model_name="notification",
            name="report",
            field=models.TextField(blank=True, editable=False),
        ),
        migrations.AddConstraint(
            model_name="notification",
            constraint=models.UniqueConstraint(
                condition=models.Q(("idempotency_key__isnull", False)),
                fields=("owner", "idempotency_key"),
                name="notification_owner_idempotency_key",
            ),
        ),
        migrations.AddField(
            model_name="destination",
            name="channel",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="destinations",
                to="messagecenter.channel",
            ),
        ),
        migrations.AddField(
            model_name="destination",
            name="notification",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.CASCADE,
                related_name="destinations",
                to="messagecenter.notification",
            ),
        ),
        migrations.AddField(
            model_name="notificationtask",
            name="destination",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="tasks",
                to="messagecenter.destination",
            ),
        ),
        migrations.RunPython(give_each_notification_its_destination, take_back_the_task_ids),
    ]
