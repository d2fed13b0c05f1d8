"""The dbtasks app: models, admin, checks and the worker commands."""

from __future__ import annotations

from django.apps import AppConfig


class DbtasksConfig(AppConfig):
    name = "dbtasks"
    verbose_name = "Database tasks"
    default_auto_field = "django.db.models.BigAutoField"
