"""Step 1 of the tour: the task backend that ``@task(...).enqueue()`` calls.

``enqueue()`` writes one ``DBTaskResult`` row in the caller's transaction, so
a task enqueued inside ``transaction.atomic()`` exists only if that
transaction commits. ``get_result()`` reads it back from any process.
Running tasks is the worker's job (``dbtasks/worker.py``).
"""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any

from django.core import checks
from django.db import connections
from django.db import router
from django.utils import timezone

from dbtasks import checks as dbtasks_checks
from dbtasks.compat import BaseTaskBackend
from dbtasks.compat import InvalidTaskBackend
from dbtasks.compat import Task
from dbtasks.compat import TaskResult
from dbtasks.compat import TaskResultDoesNotExist
from dbtasks.compat import task_enqueued
from dbtasks.exceptions import InvalidTaskArguments
from dbtasks.exceptions import TaskFunctionMissing
from dbtasks.policy import BackendOptions
from dbtasks.policy import OptionError
from dbtasks.policy import parse_options
from dbtasks.serialization import to_json_value

# The Postgres channel enqueue() notifies, and idle workers LISTEN on.
NOTIFY_CHANNEL = "dbtasks"


def serialize_arguments(args: Sequence[Any], kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """Return args and kwargs as stored, or raise InvalidTaskArguments.

    The worker calls the task with what comes back out of the database, so
    anything that would come back different is refused now, with nothing
    written.
    """
    try:
        return to_json_value({"args": list(args), "kwargs": dict(kwargs)}, what="Task arguments")
    except (TypeError, ValueError) as error:
        raise InvalidTaskArguments(
            f"{error} Pass ids, strings and numbers, and load objects inside the task."
        ) from None


class DatabaseBackend(BaseTaskBackend):
    """Store tasks in the database; ``manage.py dbtasks_worker`` runs them."""

    supports_defer = True
    supports_async_task = True
    supports_get_result = True
    supports_priority = True

    def __init__(self, alias: str, params: dict[str, Any]) -> None:
        super().__init__(alias, params)
        # A mistake in OPTIONS is reported by `manage.py check` (dbtasks.E002)
        # with the key and value; enqueue() refuses to run until it is fixed.
        self.options_error: OptionError | None = None
        try:
            self.config: BackendOptions = parse_options(alias, self.queues, self.options)
        except OptionError as error:
            self.options_error = error
            self.config = parse_options(alias, self.queues, {})

    # --- What the framework calls ------------------------------------------

    def enqueue(self, task: Task, args: Sequence[Any], kwargs: Mapping[str, Any]) -> TaskResult:
        """Insert the task's row (in the caller's transaction) and return its result."""
        from dbtasks.models import DBTaskResult

        self.validate_task(task)
        self.raise_if_misconfigured()
        arguments = serialize_arguments(args, kwargs)

        now = timezone.now()
        row = DBTaskResult.objects.create(
            task_path=task.module_path,
            backend_name=self.alias,
            queue_name=task.queue_name,
            priority=task.priority,
            run_after=task.run_after,
            takes_context=task.takes_context,
            arguments=arguments,
            enqueued_at=now,
            available_after=task.run_after or now,
        )
        self.notify_workers(task.queue_name)

        result = row.to_task_result(history=[], task=task)
        task_enqueued.send(type(self), task_result=result)
        return result

    def get_result(self, result_id: str) -> TaskResult:
        """Return the result with this id, or raise TaskResultDoesNotExist."""
        from dbtasks.models import DBTaskResult

        try:
            pk = int(str(result_id))
        except ValueError:
            raise TaskResultDoesNotExist(result_id) from None
        if not 0 < pk < 2**63:
            raise TaskResultDoesNotExist(result_id)
        try:
            row = DBTaskResult.objects.get(pk=pk, backend_name=self.alias)
            history = list(row.attempts.all()) if row.attempt_count else []
            return row.to_task_result(history=history)
        except (DBTaskResult.DoesNotExist, TaskFunctionMissing) as error:
            raise TaskResultDoesNotExist(result_id) from error

    def check(self, **kwargs: Any) -> Iterable[checks.CheckMessage]:
        yield from super().check(**kwargs)
        yield from dbtasks_checks.check_backend(self)

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

    def notify_workers(self, queue_name: str) -> None:
        """Wake idle workers at once on Postgres; delivered only if the enqueue commits."""
        if self.uses_listen_notify():
            with connections[self.db_alias].cursor() as cursor:
                cursor.execute("SELECT pg_notify(%s, %s)", [NOTIFY_CHANNEL, queue_name])
