"""``manage.py dbtasks_purge``: delete old task results now (workers also do it periodically)."""

from __future__ import annotations

import argparse
from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand
from django.core.management.base import CommandError

from dbtasks.clock import database_time
from dbtasks.management.arguments import add_backend_argument
from dbtasks.management.arguments import duration
from dbtasks.management.arguments import positive_int
from dbtasks.management.lookup import database_backend
from dbtasks.purge import purge_expired
from dbtasks.sql.purge import Kind


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
            "unfinished: waiting and RUNNING results, by enqueue time.",
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
        which: Kind,
        before: timedelta | None,
        limit: int | None,
        backend: str,
        **options: Any,
    ) -> None:
        task_backend = database_backend(backend)
        age = before if before is not None else getattr(task_backend.config.purge, which)
        if age is None:
            raise CommandError(
                f"The purge policy keeps {which} results forever; pass --before to purge anyway."
            )
        deleted = purge_expired(
            task_backend, now=database_time(task_backend.db_alias), ages={which: age}, limit=limit
        )
        self.stdout.write(f"Deleted {deleted[which]} {which} task result(s) older than {age}.")
