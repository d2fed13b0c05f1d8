"""Which configured task backends the read side can show."""

from __future__ import annotations

from django.conf import settings

from dbtasks.backend import DatabaseBackend
from dbtasks.compat import InvalidTaskBackend
from dbtasks.compat import task_backends


def database_backends() -> dict[str, DatabaseBackend]:
    """Every configured task backend that is a dbtasks ``DatabaseBackend``, by alias."""
    found: dict[str, DatabaseBackend] = {}
    for alias in getattr(settings, "TASKS", {}):
        try:
            backend = task_backends[alias]
        except InvalidTaskBackend:
            # A backend that cannot even be built is reported by `manage.py
            # check`; the dashboard shows the ones that work.
            continue
        if isinstance(backend, DatabaseBackend):
            found[alias] = backend
    return found
