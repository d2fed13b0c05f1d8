"""Find the backend a dbtasks command works with (``--backend``), or say why not."""

from __future__ import annotations

from django.core.management.base import CommandError

from dbtasks.backend import DatabaseBackend
from dbtasks.compat import InvalidTaskBackend
from dbtasks.compat import task_backends


def database_backend(alias: str, *, require_valid_options: bool = True) -> DatabaseBackend:
    """Return the dbtasks backend ``alias`` of settings.TASKS, or raise CommandError.

    ``require_valid_options=False`` lets a command that reports on a broken
    configuration (``dbtasks_health``) have the backend anyway.
    """
    if alias not in task_backends.settings:
        # Django's own message speaks of a "connection".
        raise CommandError(
            f"settings.TASKS has no backend {alias!r}; it has "
            f"{', '.join(map(repr, task_backends.settings))}."
        )
    try:
        backend = task_backends[alias]
    except InvalidTaskBackend as error:
        raise CommandError(str(error)) from None
    if not isinstance(backend, DatabaseBackend):
        raise CommandError(
            f"Backend {alias!r} is {type(backend).__name__}, which is not a dbtasks "
            "DatabaseBackend."
        )
    if require_valid_options:
        try:
            backend.raise_if_misconfigured()
        except InvalidTaskBackend as error:
            raise CommandError(str(error)) from None
    return backend
