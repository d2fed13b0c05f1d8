"""The task admin's list filters and time columns (``dbtasks/admin.py`` uses them).

Made for a table of millions: the filters offer the configured queues and
backends instead of asking the table for its distinct values, and every
time is shown in one format with its zone (``dbtasks.times``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib import admin
from django.db.models import Q
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.safestring import SafeString

from dbtasks.models import BLOCKED
from dbtasks.models import CANCELLED_TASKS
from dbtasks.models import FAILED
from dbtasks.models import READY
from dbtasks.models import RUNNING
from dbtasks.models import SCHEDULED
from dbtasks.models import SUCCESSFUL
from dbtasks.times import time_element


def time_column(field: str, description: str) -> Callable[[Any, Any], SafeString]:
    """A list or detail column showing ``field`` as a time labelled with its zone."""

    @admin.display(description=description, ordering=field)
    def show(self: Any, obj: Any) -> SafeString:
        return time_element(getattr(obj, field))

    return show


def states(now: Any) -> dict[str, tuple[str, Q]]:
    """The task list's states: parameter value -> (label, rows in that state).

    Waiting rows split as on the ops dashboard; a cancelled task is not Failed.
    """
    waiting = (READY, SCHEDULED)
    return {
        "ready": ("Ready", Q(status__in=waiting, available_after__lte=now)),
        "scheduled": ("Scheduled", Q(status__in=waiting, available_after__gt=now)),
        "blocked": ("Blocked", Q(status=BLOCKED)),
        "running": ("Running", Q(status=RUNNING)),
        "successful": ("Successful", Q(status=SUCCESSFUL)),
        "failed": ("Failed", Q(status=FAILED) & ~CANCELLED_TASKS),
        "cancelled": ("Cancelled", CANCELLED_TASKS),
    }


class StateFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(value, label) for value, (label, _) in states(timezone.now()).items()]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        chosen = states(timezone.now()).get(self.value() or "")
        return queryset.filter(chosen[1]) if chosen else queryset


def configured_backends() -> dict[str, list[str]]:
    """Each dbtasks backend alias in TASKS with its queues (from settings: no query)."""
    found = {}
    for alias, config in getattr(settings, "TASKS", {}).items():
        if str(config.get("BACKEND", "")).startswith("dbtasks."):
            found[alias] = sorted(config.get("QUEUES") or ["default"])
    return found


class QueueFilter(admin.SimpleListFilter):
    """The configured queues: asking a big table for its distinct queue names is a full scan."""

    title = "queue"
    parameter_name = "queue_name"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        names = sorted({name for queues in configured_backends().values() for name in queues})
        if (chosen := self.value()) and chosen not in names:
            names.append(chosen)  # a queue no longer configured, reached by its URL
        return [(name, name) for name in names]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        return queryset.filter(queue_name=self.value()) if self.value() else queryset


class BackendFilter(admin.SimpleListFilter):
    title = "backend"
    parameter_name = "backend_name"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(alias, alias) for alias in configured_backends()]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        return queryset.filter(backend_name=self.value()) if self.value() else queryset
