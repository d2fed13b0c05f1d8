"""Step 3 of the tour: the task backend that ``@task(...).enqueue()`` calls.

``enqueue()`` writes one ``DBTaskResult`` row in the caller's transaction, so
a task enqueued inside ``transaction.atomic()`` exists only if that
transaction commits. ``get_result()`` reads it back from any process.
Running tasks is the worker's job (``dbtasks/worker/loop.py``).
"""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Mapping
from collections.abc import Sequence
from typing import TYPE_CHECKING
from typing import Any

from django.core import checks
from django.core.exceptions import SuspiciousOperation
from django.db import connections
from django.db import router
from django.db import transaction

from dbtasks import checks as dbtasks_checks
from dbtasks import rows
from dbtasks.clock import database_time
from dbtasks.compat import BaseTaskBackend
from dbtasks.compat import InvalidTask
from dbtasks.compat import InvalidTaskBackend
from dbtasks.compat import Task
from dbtasks.compat import TaskResult
from dbtasks.compat import TaskResultDoesNotExist
from dbtasks.compat import task_enqueued
from dbtasks.exceptions import TaskArgumentsCorrupt
from dbtasks.exceptions import TaskFunctionMissing
from dbtasks.options import BackendOptions
from dbtasks.options import OptionError
from dbtasks.options import parse_options
from dbtasks.options import parse_queues

if TYPE_CHECKING:
    from dbtasks.results import ResultSummary


def parse_result_id(result_id: object) -> int | None:
    """Return the row id a result id stands for, or None if it is not one."""
    text = str(result_id)
    # Only the digits str(pk) gives: int() alone would also take " 12",
    # "+12", "012" and "1_2" (one row answering to many ids), and raise
    # ValueError past 4,300 digits.
    if not (text.isascii() and text.isdigit() and len(text) <= 19):
        return None
    if text != str(int(text)) or not 0 < int(text) < 2**63:
        return None
    return int(text)


class DatabaseBackend(BaseTaskBackend):
    """Store tasks in the database; ``manage.py dbtasks_worker`` runs them."""

    supports_defer = True
    supports_async_task = True
    supports_get_result = True
    supports_priority = True

    def __init__(self, alias: str, params: dict[str, Any]) -> None:
        super().__init__(alias, params)
        # A mistake in QUEUES or OPTIONS is reported by `manage.py check`
        # (dbtasks.E002) with the key and value; enqueue() and the worker
        # refuse to run until it is fixed.
        self.options_error: OptionError | None = None
        try:
            if "QUEUES" in params:
                self.queues = parse_queues(alias, params["QUEUES"])
            self.config: BackendOptions = parse_options(alias, self.queues, self.options)
        except OptionError as error:
            self.options_error = error
            if "QUEUES" in params and not isinstance(params["QUEUES"], list | tuple):
                # Django read QUEUES="default" as the letters d, e, f...: every
                # @task module would fail to import before the check could say
                # why. Accept any queue name until QUEUES is fixed.
                self.queues = set()
            self.config = parse_options(alias, self.queues, {})

    # --- What the framework calls ------------------------------------------

    def enqueue[**P, R](
        self, task: Task[P, R], args: Sequence[Any], kwargs: Mapping[str, Any]
    ) -> TaskResult[P, R]:
        """Insert the task's row (in the caller's transaction) and return its result."""
        row = rows.new_row(self, task, args, kwargs)
        rows.insert_row(self, row)
        result = row.to_task_result(history=[], task=task)
        task_enqueued.send(type(self), task_result=result)
        return result

    def enqueue_many[**P, R](
        self, task: Task[P, R], calls: Iterable[tuple[Sequence[Any], Mapping[str, Any]]]
    ) -> list[TaskResult[P, R]]:
        """Enqueue ``task`` once per ``(args, kwargs)`` in ``calls``, in one INSERT.

        What ``enqueue()`` does for each call (the same validation, a
        ``task_enqueued`` signal per result, the caller's transaction), at a
        fraction of the cost per task. All or nothing: if any call's
        arguments are refused, nothing is written; the rows are inserted
        together or not at all. A task with a concurrency limit is enqueued
        call by call (in one transaction): each row computes its key and
        takes a slot or waits BLOCKED, as ``enqueue()`` does.
        """
        from dbtasks.models import READY
        from dbtasks.sql.bulk import insert_many

        calls = list(calls)
        policy = self.config.policy(task.queue_name, task.module_path)
        if policy.concurrency or (policy.rate_limit and policy.rate_limit.key):
            # Each row takes a slot, or has a key of its own: one enqueue per call.
            with transaction.atomic(using=self.db_alias):
                return [self.enqueue(task, args, kwargs) for args, kwargs in calls]
        template = rows.new_row(self, task, (), {})  # validates the task and the backend
        new_rows = []
        for args, kwargs in calls:
            # A copy of one row costs far less than a new model instance; only
            # the arguments differ.
            row = rows.copy_row(template)
            row.arguments = rows.serialize_arguments(
                args, kwargs, max_size=self.config.max_arguments_size
            )
            new_rows.append(row)
        if not new_rows:
            return []
        # One statement, atomic on its own; ids come back with RETURNING.
        insert_many(template, new_rows, db=self.db_alias)
        if template.status == READY:  # one task: every row has the same status
            self.notify_workers(task.queue_name)
        results = [row.to_task_result(history=[], task=task) for row in new_rows]
        for result in results:
            task_enqueued.send(type(self), task_result=result)
        return results

    def get_result(self, result_id: str) -> TaskResult[..., Any]:
        """Return the result with this id, or raise TaskResultDoesNotExist."""
        from dbtasks.models import DBTaskResult

        pk = parse_result_id(result_id)
        if pk is None:
            raise TaskResultDoesNotExist(result_id)
        try:
            row = DBTaskResult.objects.get(pk=pk, backend_name=self.alias)
            history = list(row.attempts.all()) if row.attempt_count else []
            return row.to_task_result(history=history)
        except (
            DBTaskResult.DoesNotExist,
            TaskFunctionMissing,
            SuspiciousOperation,
            TaskArgumentsCorrupt,
            InvalidTask,
        ) as error:
            # A row that no longer makes a Task call (its function gone or not
            # a Task, its arguments or options malformed) has no TaskResult to
            # give; the caller sees the one exception the contract allows.
            raise TaskResultDoesNotExist(result_id) from error

    def get_results(
        self,
        result_ids: Iterable[str],
        *,
        task: Task[Any, Any] | None = None,
        history: bool = False,
    ) -> dict[str, ResultSummary]:
        """Summaries of many results by id, in one query (two with ``history``).

        See ``dbtasks.results.get_results()``: ids not found are absent.
        """
        from dbtasks.results import get_results

        return get_results(result_ids, backend=self, task=task, history=history)

    def cancel(self, result_id: str) -> bool:
        """Cancel a task that has not finished; return False if it had finished.

        A waiting task is FAILED at once and never runs. A RUNNING task is
        asked to stop: the worker running it notices within a heartbeat, an
        ``async def`` task is cancelled, and a sync task stops where it calls
        ``dbtasks.cancellation.raise_if_cancelled()``. Either way it ends
        FAILED with ``dbtasks.exceptions.TaskCancelled`` and is not retried.
        A sync task that never checks runs to its end; its row keeps
        ``cancel_requested_at`` as the record that a cancel was asked.
        """
        from dbtasks.models import RUNNING
        from dbtasks.models import DBTaskResult

        pk = parse_result_id(result_id)
        if pk is None:
            raise TaskResultDoesNotExist(result_id)
        rows = DBTaskResult.objects.filter(pk=pk, backend_name=self.alias)
        now = database_time(self.db_alias)
        # Two guarded UPDATEs, no read first: a row claimed between them is
        # RUNNING by the second, and one that finished meanwhile matches neither.
        if rows.cancel_ready(now) or rows.request_cancel(now):
            return True
        if not rows.exists():
            raise TaskResultDoesNotExist(result_id)
        return rows.filter(status=RUNNING, cancel_requested_at__isnull=False).exists()

    def check(self, **kwargs: Any) -> list[checks.CheckMessage]:
        return [*super().check(**kwargs), *dbtasks_checks.check_backend(self)]

    # --- dbtasks' own API ---------------------------------------------------

    def raise_if_misconfigured(self) -> None:
        """Raise InvalidTaskBackend if OPTIONS were wrong."""
        if self.options_error is not None:
            raise InvalidTaskBackend(str(self.options_error))

    @property
    def db_alias(self) -> str:
        """The database the task rows live in (database routers apply)."""
        from dbtasks.models import DBTaskResult

        return router.db_for_write(DBTaskResult)

    def uses_listen_notify(self) -> bool:
        """Whether enqueues wake idle workers through Postgres LISTEN/NOTIFY."""
        return self.config.listen_notify and connections[self.db_alias].vendor == "postgresql"

    @property
    def listen_alias(self) -> str:
        """The database workers LISTEN on: OPTIONS['listen_database'], else the tasks' own."""
        return self.config.listen_database or self.db_alias

    def notify_workers(self, queue_name: str) -> None:
        """Wake idle workers at once on Postgres; delivered only if the transaction commits.

        enqueue() sends its NOTIFY with the INSERT (dbtasks/sql/notify.py); this is
        for rows written otherwise (a bulk insert, say).
        """
        from dbtasks.sql import notify

        if self.uses_listen_notify():
            notify.notify(self.db_alias, queue_name)
