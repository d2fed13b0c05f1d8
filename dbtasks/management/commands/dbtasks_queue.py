"""``manage.py dbtasks_queue pause|resume|list [NAME ...]``: pause and resume queues.

A paused queue's tasks are not claimed by any worker (within a heartbeat
interval); running ones finish, new ones are accepted and wait. See
``dbtasks/queues.py``.
"""

from __future__ import annotations

import argparse
from typing import Any

from django.core.management.base import BaseCommand
from django.core.management.base import CommandError

from dbtasks.management.arguments import add_backend_argument
from dbtasks.management.lookup import database_backend
from dbtasks.queues import pause
from dbtasks.queues import paused_queues
from dbtasks.queues import resume


class Command(BaseCommand):
    help = (
        "Pause queues (workers stop claiming their tasks; running ones finish), resume "
        "them, or list every queue with its state."
    )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("action", choices=["pause", "resume", "list"])
        parser.add_argument("names", nargs="*", metavar="NAME", help="Queue names.")
        add_backend_argument(parser)

    def handle(self, *, action: str, names: list[str], backend: str, **options: Any) -> None:
        task_backend = database_backend(backend, require_valid_options=False)
        known = set(task_backend.queues)
        unknown = sorted(set(names) - known) if known else []
        if unknown:
            raise CommandError(
                f"Unknown queue(s) {', '.join(unknown)}; backend {backend!r} has "
                f"{', '.join(sorted(known))}."
            )
        if action == "list":
            paused = paused_queues(backend)
            for name in sorted(set(names) or known | paused):
                self.stdout.write(f"{name}\t{'paused' if name in paused else 'running'}")
            return
        if not names:
            raise CommandError(f"Name the queue(s) to {action}.")
        for name in names:
            if action == "pause":
                changed = pause(name, backend_name=backend)
                self.stdout.write(f"{name}: {'paused' if changed else 'was paused already'}")
            else:
                changed = resume(name, backend_name=backend)
                self.stdout.write(f"{name}: {'resumed' if changed else 'was not paused'}")
