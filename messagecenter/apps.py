"""The Message Center app: notifications sent with django.tasks."""

from __future__ import annotations

from django.apps import AppConfig


class MessageCenterConfig(AppConfig):
    name = "messagecenter"
    verbose_name = "Message Center"
    default_auto_field = "django.db.models.BigAutoField"
