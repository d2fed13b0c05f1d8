"""One interface over the three systems, for the figures (runs inside an arm).

``DjangoQueue`` drives dbtasks or django-tasks-db through ``django.tasks``
(``task.enqueue()``, ``backend.get_result()``) and reads their tables for
bookkeeping; ``CeleryQueue`` drives Celery (``task.delay()``) and reads its
Redis result store. Timed code paths only ever use the public APIs; the
bulk inserts here are for setting up backlogs quickly, outside any timing.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC
from datetime import datetime
from typing import Any
from typing import Protocol

from bench.harness import CELERY
from bench.harness import DBTASKS
from bench.harness import Arm
from bench.workers import ManagedProcess
from bench.workers import wait_until

FINISHED = ("SUCCESSFUL", "FAILED")


class Queue(Protocol):
    """What the figures need from a system."""

    arm: Arm

    def reset(self) -> None: ...
    def clear(self) -> None: ...
    def enqueue(self, name: str, *args: Any) -> Any: ...
    def atomic(self) -> contextlib.AbstractContextManager[Any]: ...
    def outcome(self, handle: Any) -> dict[str, Any]: ...
    def feed(self, count: int) -> None: ...
    def prepare_backlog(self, count: int) -> None: ...
    def release_backlog(self, count: int) -> float: ...
    def finished_count(self) -> int: ...
    def last_finished_at(self) -> float: ...
    def worker_commands(self, processes: int) -> list[list[str]]: ...
    def worker_env(self) -> dict[str, str]: ...
    def warm_up(self, workers: list[ManagedProcess], processes: int) -> None: ...
    def rss_kib(self, workers: list[ManagedProcess]) -> int: ...


def queue_for(arm: Arm) -> Queue:
    return CeleryQueue(arm) if arm.system == CELERY else DjangoQueue(arm)


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("VIRTUAL_ENV", None)
    return env


class DjangoQueue:
    """dbtasks or django-tasks-db, through django.tasks."""

    def __init__(self, arm: Arm) -> None:
        from django.db import connections
        from django.tasks import task_backends

        self.arm = arm
        self.backend = task_backends["default"]
        self.connection = connections["default"]
        if arm.system == DBTASKS:
            from dbtasks.models import DBTaskAttempt
            from dbtasks.models import DBTaskResult
            from dbtasks.workflows.models import DBWorkflow
            from dbtasks.workflows.models import DBWorkflowMember

            self.model: Any = DBTaskResult
            # In an order that deletes each row before any it refers to.
            self.tables = [
                model._meta.db_table
                for model in (DBTaskAttempt, DBWorkflowMember, DBTaskResult, DBWorkflow)
            ]
        else:
            from django_tasks_db.models import DBTaskResult as TasksDBResult

            self.model = TasksDBResult
            self.tables = [TasksDBResult._meta.db_table]

    # --- The public API (what is timed) -------------------------------------

    def enqueue(self, name: str, *args: Any) -> Any:
        from bench import tasks

        return getattr(tasks, name).enqueue(*args)

    def atomic(self) -> contextlib.AbstractContextManager[Any]:
        from django.db import transaction

        return transaction.atomic()

    def outcome(self, handle: Any) -> dict[str, Any]:
        result = self.backend.get_result(handle.id)
        return {
            "status": str(result.status),
            "return_value": result.return_value if result.status == "SUCCESSFUL" else None,
            "enqueued_at": result.enqueued_at.timestamp() if result.enqueued_at else None,
            "started_at": result.started_at.timestamp() if result.started_at else None,
        }

    # --- Bookkeeping --------------------------------------------------------

    def reset(self) -> None:
        """Empty the task tables (no worker may be running)."""
        with self.connection.cursor() as cursor:
            if self.connection.vendor == "postgresql":
                cursor.execute(f"TRUNCATE {', '.join(self.quoted_tables())}")
            else:
                for table in self.quoted_tables():
                    cursor.execute(f"DELETE FROM {table}")

    def clear(self) -> None:
        """Delete every result (workers may be running)."""
        with self.connection.cursor() as cursor:
            for table in self.quoted_tables():
                cursor.execute(f"DELETE FROM {table}")

    def quoted_tables(self) -> list[str]:
        return [self.connection.ops.quote_name(table) for table in self.tables]

    def new_row(self, name: str = "noop") -> Any:
        from django.utils import timezone

        arguments: dict[str, Any] = {"args": [], "kwargs": {}}
        if self.arm.system == DBTASKS:
            now = timezone.now()
            return self.model(
                task_path=f"bench.tasks.{name}",
                backend_name="default",
                queue_name="default",
                priority=0,
                run_after=None,
                takes_context=False,
                arguments=arguments,
                enqueued_at=now,
                available_after=now,
            )
        from django_tasks_db.models import get_date_max

        return self.model(
            id=uuid.uuid4(),
            args_kwargs=arguments,
            priority=0,
            task_path=f"bench.tasks.{name}",
            queue_name="default",
            backend_name="default",
            run_after=get_date_max(),  # what its pre_save handler sets for "no run_after"
        )

    def feed(self, count: int) -> None:
        """Insert ``count`` ready no-op tasks in one transaction (setup, untimed)."""
        from django.db import transaction

        with transaction.atomic():
            self.model.objects.bulk_create((self.new_row() for _ in range(count)), batch_size=1000)
            if self.arm.system == DBTASKS:
                # What enqueue() sends; Postgres folds identical NOTIFYs in one transaction.
                from dbtasks.backend import DatabaseBackend

                assert isinstance(self.backend, DatabaseBackend)
                self.backend.notify_workers("default")

    def prepare_backlog(self, count: int) -> None:
        """Nothing to do: the backlog appears at once, in ``release_backlog``."""

    def release_backlog(self, count: int) -> float:
        """Make ``count`` tasks ready at once (one commit); return when they became visible."""
        self.feed(count)
        return time.time()

    def finished_count(self) -> int:
        return int(self.model.objects.filter(status__in=FINISHED).count())

    def failed_count(self) -> int:
        return int(self.model.objects.filter(status="FAILED").count())

    def last_finished_at(self) -> float:
        from django.db.models import Max

        value = self.model.objects.aggregate(last=Max("finished_at"))["last"]
        return value.timestamp() if value else float("nan")

    def first_started_at(self) -> float:
        from django.db.models import Min

        value = self.model.objects.aggregate(first=Min("started_at"))["first"]
        return value.timestamp() if value else float("nan")

    # --- Workers ------------------------------------------------------------

    def worker_commands(self, processes: int) -> list[list[str]]:
        """The worker command, at its defaults, once per process."""
        if self.arm.system == DBTASKS:
            command = [sys.executable, "-m", "django", "dbtasks_worker"]
        else:
            # -v 0: at verbosity 1 db_worker sets django.tasks to INFO, which logs
            # two lines per task; every arm runs with logging at WARNING.
            command = [sys.executable, "-m", "django", "db_worker", "--verbosity", "0"]
        return [command] * processes

    def worker_env(self) -> dict[str, str]:
        return child_env()

    def warm_up(self, workers: list[ManagedProcess], processes: int) -> None:
        """Run ``pid`` tasks until every worker process has run one, then clear them."""
        from django.tasks import TaskResultStatus

        seen: set[int] = set()
        deadline = time.monotonic() + 90
        while len(seen) < processes:
            handles = [self.enqueue("pid") for _ in range(4 * processes)]
            ids = [handle.id for handle in handles]

            def done(ids: list[str] = ids) -> bool:
                return all(
                    self.backend.get_result(i).status == TaskResultStatus.SUCCESSFUL for i in ids
                )

            wait_until(
                done,
                timeout=max(deadline - time.monotonic(), 1),
                watch=workers,
                what=f"{self.arm.name} workers to start",
            )
            seen |= {self.backend.get_result(i).return_value for i in ids}
        self.clear()

    def rss_kib(self, workers: list[ManagedProcess]) -> int:
        return sum(worker.rss_kib() for worker in workers)


class CeleryQueue:
    """Celery with Redis as broker and result store."""

    BACKLOG_QUEUE = "bench-backlog"

    def __init__(self, arm: Arm) -> None:
        import redis

        from bench import celery_app

        self.arm = arm
        self.module = celery_app
        self.app = celery_app.app
        self.broker = redis.Redis.from_url(celery_app.REDIS_URL)
        self.results = redis.Redis.from_url(celery_app.RESULTS_URL)
        self.hostname = f"bench-{uuid.uuid4().hex[:8]}@localhost"

    def enqueue(self, name: str, *args: Any) -> Any:
        return getattr(self.module, name).delay(*args)

    def atomic(self) -> contextlib.AbstractContextManager[Any]:
        return contextlib.nullcontext()

    def outcome(self, handle: Any) -> dict[str, Any]:
        value = handle.get(timeout=30)
        return {
            "status": handle.status,
            "return_value": value,
            "enqueued_at": None,
            "started_at": None,
        }

    def reset(self) -> None:
        self.broker.flushdb()
        self.results.flushdb()

    def clear(self) -> None:
        self.results.flushdb()

    def publish(self, count: int, queue: str | None = None) -> None:
        """Publish ``count`` no-op tasks through one producer (setup, untimed)."""
        options = {"queue": queue} if queue else {}
        with self.app.producer_or_acquire() as producer:
            for _ in range(count):
                self.module.noop.apply_async(producer=producer, **options)

    def feed(self, count: int) -> None:
        self.publish(count)

    def prepare_backlog(self, count: int) -> None:
        """Queue ``count`` tasks where the (running) worker does not consume yet."""
        self.publish(count, queue=self.BACKLOG_QUEUE)

    def release_backlog(self, count: int) -> float:
        """Tell the worker to consume the backlog queue; return when we asked."""
        started = time.time()
        replies = self.app.control.add_consumer(
            self.BACKLOG_QUEUE, destination=[self.hostname], reply=True, timeout=5
        )
        if not replies:
            raise RuntimeError("The Celery worker did not answer add_consumer.")
        return started

    def finished_count(self) -> int:
        return int(self.results.dbsize())

    def last_finished_at(self) -> float:
        last = 0.0
        keys = list(self.results.scan_iter(match="celery-task-meta-*", count=5000))
        for start in range(0, len(keys), 5000):
            for raw in self.results.mget(keys[start : start + 5000]):
                if raw is None:
                    continue
                done = datetime.fromisoformat(json.loads(raw)["date_done"])
                if done.tzinfo is None:
                    done = done.replace(tzinfo=UTC)
                last = max(last, done.timestamp())
        return last

    def worker_commands(self, processes: int) -> list[list[str]]:
        """One worker with ``processes`` prefork children (the tuned flags, see celery_app)."""
        return [
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "bench.celery_app",
                "worker",
                "--pool=prefork",
                f"--concurrency={processes}",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "--loglevel=WARNING",
                "--hostname",
                self.hostname,
                "--queues",
                "celery",
            ]
        ]

    def worker_env(self) -> dict[str, str]:
        env = child_env()
        # Without this the worker installs Celery's Django fix-up (a
        # connection check around every task) for a task that uses no database.
        env.pop("DJANGO_SETTINGS_MODULE", None)
        return env

    def warm_up(self, workers: list[ManagedProcess], processes: int) -> None:
        seen: set[int] = set()
        deadline = time.monotonic() + 90
        while len(seen) < processes:
            for worker in workers:
                worker.check_alive()
            if time.monotonic() > deadline:
                raise TimeoutError(f"Celery pool did not start {processes} processes.")
            handles = [self.module.pid.delay() for _ in range(4 * processes)]
            seen |= {handle.get(timeout=60) for handle in handles}
        self.clear()

    def rss_kib(self, workers: list[ManagedProcess]) -> int:
        # The main process and its prefork children.
        return sum(worker.rss_kib(tree=True) for worker in workers)


@contextlib.contextmanager
def running_workers(
    queue: Queue, processes: int, *, warm: bool = True
) -> Iterator[list[ManagedProcess]]:
    """Start the system's workers, wait until every process has run a task."""
    from bench.workers import started

    with started(
        queue.worker_commands(processes), env=queue.worker_env(), name=queue.arm.name
    ) as workers:
        if warm:
            queue.warm_up(workers, processes)
        yield workers
