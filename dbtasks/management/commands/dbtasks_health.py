"""``manage.py dbtasks_health``: exit 0 if task processing is healthy, else 1.

The checks themselves are in ``dbtasks/ops/health.py``.

Made for container health checks (Docker ``HEALTHCHECK``, a Kubernetes exec
probe) and cron jobs: one line of output, the exit code is the verdict, no
system checks first (they cost time on every probe and are not its job).
"""

from __future__ import annotations

import argparse
import sys
from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand
from django.core.management.base import CommandError

from dbtasks.management.arguments import add_backend_argument
from dbtasks.management.arguments import add_queue_argument
from dbtasks.management.arguments import count
from dbtasks.management.arguments import positive_duration
from dbtasks.management.lookup import database_backend
from dbtasks.ops.health import HealthLimits
from dbtasks.ops.health import HealthReport
from dbtasks.ops.health import check_health

EXIT_UNHEALTHY = 1


class Command(BaseCommand):
    help = (
        "Check task processing: exit 0 and print 'OK: ...', or exit 1 and print "
        "'UNHEALTHY: <reason>' when the backlog or the oldest ready task's age passes "
        "the given limits, no worker has heartbeated recently, or the database is down."
    )
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        add_backend_argument(parser)
        add_queue_argument(parser, does="Check only these queues")
        parser.add_argument(
            "--max-ready",
            type=count,
            help="Unhealthy when more tasks than this are ready to run (default: no limit).",
        )
        parser.add_argument(
            "--max-age",
            type=positive_duration,
            help="Unhealthy when the oldest ready task has waited longer than this, "
            "e.g. '5 minutes' (default: no limit).",
        )
        parser.add_argument(
            "--heartbeat-within",
            type=positive_duration,
            help="Unhealthy unless a worker serving each checked queue heartbeated within "
            "this, e.g. '1 minute' (default: the backend's heartbeat_timeout).",
        )

    def handle(
        self,
        *,
        backend: str,
        queues: list[str] | None,
        max_ready: int | None,
        max_age: timedelta | None,
        heartbeat_within: timedelta | None,
        verbosity: int,
        **options: Any,
    ) -> None:
        task_backend = database_backend(backend, require_valid_options=False)
        if queues:
            unknown = sorted(set(queues) - set(task_backend.queues))
            if unknown:
                raise CommandError(
                    f"Unknown queue(s) {', '.join(unknown)}; backend {backend!r} has "
                    f"{', '.join(sorted(task_backend.queues))}."
                )
        if task_backend.options_error is not None:
            # Workers refuse to start with broken OPTIONS: nothing is processed.
            report = HealthReport(problems=(str(task_backend.options_error),))
        else:
            report = check_health(
                task_backend,
                queues=queues,
                limits=HealthLimits(
                    max_ready=max_ready, max_age=max_age, heartbeat_within=heartbeat_within
                ),
            )
        if report.healthy:
            if verbosity > 0:
                self.stdout.write(report.line())
            return
        if verbosity > 0:
            self.stderr.write(report.line())
        # Not CommandError: that would print "CommandError: UNHEALTHY: ...".
        # The exit code is the verdict; the line is the reason.
        sys.exit(EXIT_UNHEALTHY)
