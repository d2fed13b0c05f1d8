"""``manage.py dbtasks_worker``: run tasks from a DatabaseBackend (see dbtasks/worker/loop.py)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Any

from django.core.management.base import BaseCommand
from django.core.management.base import CommandError

from dbtasks.management.arguments import add_backend_argument
from dbtasks.management.arguments import add_queue_argument
from dbtasks.management.arguments import milliseconds
from dbtasks.management.arguments import positive_int
from dbtasks.management.arguments import queue_list
from dbtasks.management.arguments import seconds
from dbtasks.management.lookup import database_backend
from dbtasks.worker import EXIT_OK
from dbtasks.worker import Worker
from dbtasks.worker import WorkerOptions


class Command(BaseCommand):
    help = "Run tasks enqueued with a dbtasks DatabaseBackend until stopped."

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        add_backend_argument(parser)
        add_queue_argument(parser, does="Only run tasks from these queues")
        parser.add_argument(
            "--excluding",
            type=queue_list,
            action="extend",
            default=[],
            help="Run every queue but these; repeat or comma-separate (default: none).",
        )
        parser.add_argument(
            "--id",
            dest="name",
            help="Name for this worker; the host's pid and a random suffix are appended "
            "so ids stay unique (default: the host name).",
        )
        parser.add_argument(
            "--threads",
            type=positive_int,
            default=1,
            help="Tasks run at once in this process, each in its own thread "
            "(default: %(default)r).",
        )
        parser.add_argument(
            "--max-hung-threads",
            type=positive_int,
            help="Exit (3) to be restarted fresh once this many threads are stuck in tasks "
            "that ran past their timeout and did not stop; each is replaced meanwhile "
            "(default: --threads).",
        )
        parser.add_argument(
            "--no-heartbeat-process",
            dest="heartbeat_process",
            action="store_false",
            help="Heartbeat only from a thread of the worker, not from a child process too; "
            "a task holding the GIL past heartbeat_timeout then makes the worker look lost "
            "(default: a child process beats too).",
        )
        parser.add_argument(
            "--oneshot",
            "-o",
            action="store_true",
            help="Run until no task is ready, then exit (default: keep running).",
        )
        # The delay defaults are strings: argparse only passes string defaults
        # through type=, and these must become seconds like the flags do.
        parser.add_argument(
            "--delay-min",
            type=milliseconds,
            default="50",
            help="Shortest wait in ms between polls when idle (default: %(default)s).",
        )
        parser.add_argument(
            "--delay-max",
            type=milliseconds,
            default="250",
            help="Longest wait in ms between polls when idle; on Postgres LISTEN/NOTIFY "
            "wakes the worker sooner (default: %(default)s).",
        )
        parser.add_argument(
            "--max-tasks",
            type=positive_int,
            help="Exit (0) after this many tasks, to be restarted fresh by the process "
            "manager (default: no limit).",
        )
        parser.add_argument(
            "--grace",
            type=seconds,
            default=25.0,
            help="Seconds running tasks get to finish after SIGTERM/SIGINT before they are "
            "given back for retry; keep it below your platform's kill timeout "
            "(default: %(default)r).",
        )

    def handle(
        self,
        *,
        backend: str,
        queues: list[str] | None,
        excluding: list[str],
        name: str | None,
        threads: int,
        oneshot: bool,
        delay_min: float,
        delay_max: float,
        max_tasks: int | None,
        grace: float,
        max_hung_threads: int | None,
        heartbeat_process: bool,
        verbosity: int,
        **options: Any,
    ) -> None:
        if delay_min > delay_max:
            raise CommandError("--delay-min must not be more than --delay-max.")
        task_backend = database_backend(backend)
        try:
            worker = Worker(
                task_backend,
                WorkerOptions(
                    backend_name=backend,
                    queues=tuple(queues) if queues else None,
                    excluding=tuple(excluding),
                    name=name,
                    threads=threads,
                    oneshot=oneshot,
                    delay_min=delay_min,
                    delay_max=delay_max,
                    max_tasks=max_tasks,
                    grace=grace,
                    max_hung_threads=max_hung_threads,
                    heartbeat_process=heartbeat_process,
                ),
            )
        except ValueError as error:
            raise CommandError(str(error)) from None

        if verbosity > 0:
            self.stdout.write(f"Worker {worker.id} serving {', '.join(worker.queues)}")
            self.stdout.flush()
        if verbosity > 1:
            logging.getLogger("dbtasks").setLevel(logging.DEBUG)

        code = worker.run()
        if code != EXIT_OK:
            # Abandoned or stuck task threads may still be running; do not wait for them.
            logging.shutdown()
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
        if verbosity > 0:
            self.stdout.write(f"Worker {worker.id} stopped after {worker.processed} tasks.")
