"""``manage.py dbtasks_purge``: delete old task results now (workers also do it periodically)."""

from __future__ import annotations

import argparse
from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand
from django.core.management.base import CommandError
from django.utils import timezone

from dbtasks.backend import DatabaseBackend
from dbtasks.compat import InvalidTaskBackend
from dbtasks.compat import task_backends
from dbtasks.management.arguments import add_backend_argument
from dbtasks.management.arguments import duration
from dbtasks.management.arguments import positive_int
from dbtasks.purge import purge_finished
from dbtasks.purge import purge_unfinished


def older_than(value: str) -> timedelta:
    # Errors name the option itself: "--before needs a unit, got '30'".
    return duration(value, key="--before")


class Command(BaseCommand):
    help = "Delete task results older than the purge policy (or --before)."

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "which",
            choices=["finished", "unfinished"],
            help="finished: SUCCESSFUL and FAILED results, by finish time; "
            "unfinished: READY and RUNNING results, by enqueue time.",
        )
        parser.add_argument(
            "--before",
            type=older_than,
            help="Age such as '7 days' (default: the backend's purge policy).",
        )
        parser.add_argument(
            "--limit",
            type=positive_int,
            help="Delete at most this many results (default: no limit).",
        )
        add_backend_argument(parser)

    def handle(
        self,
        *,
        which: str,
        before: timedelta | None,
        limit: int | None,
        backend: str,
        **options: Any,
    ) -> None:
        if backend not in task_backends.settings:
            # Django's own message speaks of a "connection".
            raise CommandError(
                f"settings.TASKS has no backend {backend!r}; it has "
                f"{', '.join(map(repr, task_backends.settings))}."
            )
        try:
            task_backend = task_backends[backend]
        except InvalidTaskBackend as error:
            raise CommandError(str(error)) from None
        if not isinstance(task_backend, DatabaseBackend):
            raise CommandError(f"Backend {backend!r} is not a dbtasks DatabaseBackend.")
        try:
            task_backend.raise_if_misconfigured()
        except InvalidTaskBackend as error:
            raise CommandError(str(error)) from None
        policy = task_backend.config.purge
        age = before if before is not None else getattr(policy, which)
        if age is None:
            raise CommandError(
                f"The purge policy keeps {which} results forever; pass --before to purge anyway."
            )
        purge = purge_finished if which == "finished" else purge_unfinished
        deleted = purge(
            db=task_backend.db_alias,
            backend_name=backend,
            before=timezone.now() - age,
            batch_size=policy.batch_size,
            limit=limit,
        )
        self.stdout.write(f"Deleted {deleted} {which} task result(s) older than {age}.")
