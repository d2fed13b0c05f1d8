"""The task rows' QuerySet: which rows, and the guarded bulk changes an operator makes."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from django.db import models
from django.db import transaction

from dbtasks.models.states import BLOCKED
from dbtasks.models.states import FAILED
from dbtasks.models.states import FINISHED
from dbtasks.models.states import READY
from dbtasks.models.states import RUNNING
from dbtasks.models.states import UNFINISHED
from dbtasks.models.states import WAITING

if TYPE_CHECKING:
    from dbtasks.models.results import DBTaskResult


class DBTaskResultQuerySet(models.QuerySet["DBTaskResult"]):
    def ready(self, now: datetime) -> DBTaskResultQuerySet:
        """Rows a worker may claim now, in the order it claims them."""
        return self.filter(status=READY, available_after__lte=now).order_by(
            "-claim_priority", "available_after", "id"
        )

    def finished(self) -> DBTaskResultQuerySet:
        return self.filter(status__in=FINISHED)

    def unfinished(self) -> DBTaskResultQuerySet:
        return self.filter(status__in=UNFINISHED)

    def finished_before(self, cutoff: datetime) -> DBTaskResultQuerySet:
        """Finished rows old enough to purge (uses dbtasks_finished_idx)."""
        return self.finished().filter(finished_at__lt=cutoff)

    def requeue_failed(self, now: datetime) -> int:
        """Make FAILED rows READY to run now; each gets one more attempt. Return how many.

        A unique task whose key has an unfinished task again is left FAILED:
        the unique key allows one at a time. A task with a concurrency limit
        goes BLOCKED and gets a slot like any other (dbtasks.sql.semaphores).
        """
        from dbtasks.sql import semaphores

        taken = result_model().objects.filter(status__in=UNFINISHED).exclude(unique_key="")
        failed = self.filter(status=FAILED).exclude(
            ~models.Q(unique_key=""), unique_key__in=taken.values("unique_key")
        )
        again = {
            "available_after": now,
            "finished_at": None,
            "cancelled_at": None,
            "cancel_requested_at": None,
            "worker_id": "",
        }
        with transaction.atomic(using=self.db):
            limited = failed.exclude(concurrency_key="")
            keys: dict[str, set[str]] = {}
            for backend_name, key in limited.values_list("backend_name", "concurrency_key"):
                keys.setdefault(backend_name, set()).add(key)
            requeued = limited.update(status=BLOCKED, **again)
            requeued += failed.filter(concurrency_key="").update(status=READY, **again)
            for backend_name, names in keys.items():
                semaphores.give_back(self.db, backend_name, names, now)
            return requeued

    def cancel_ready(self, now: datetime) -> int:
        """Cancel rows that have not started: FAILED at once, never run. Return how many.

        Only waiting rows change, in one guarded UPDATE: a row a worker has
        claimed (RUNNING) is not cancelled, and a cancelled row is never
        claimed. A cancelled workflow member counts as finished for the
        members waiting on it, in the same transaction.
        """
        from dbtasks.sql import semaphores
        from dbtasks.workflows.release import cancel_members

        with transaction.atomic(using=self.db):
            # Rows with a concurrency limit give their slots back, in the same transaction.
            limited = self.filter(status__in=WAITING).exclude(concurrency_key="")
            keys: dict[str, set[str]] = {}
            for backend_name, key in limited.values_list("backend_name", "concurrency_key"):
                keys.setdefault(backend_name, set()).add(key)
            for backend_name, names in keys.items():
                semaphores.lock(self.db, backend_name, names)
            members = cancel_members(self.filter(status__in=WAITING, in_workflow=True), now)
            cancelled = self.filter(status__in=WAITING).update(
                status=FAILED, finished_at=now, cancelled_at=now, worker_id=""
            )
            for backend_name, names in keys.items():
                semaphores.give_back(self.db, backend_name, names, now)
            return members + cancelled

    def request_cancel(self, now: datetime) -> int:
        """Ask the workers running these RUNNING rows to stop them. Return how many.

        The first request counts: asking again keeps its time.
        """
        return self.filter(status=RUNNING, cancel_requested_at__isnull=True).update(
            cancel_requested_at=now
        )

    def unfinished_before(self, cutoff: datetime) -> DBTaskResultQuerySet:
        """Rows never finished and enqueued before ``cutoff`` (uses dbtasks_unfinished_idx)."""
        return self.unfinished().filter(enqueued_at__lt=cutoff)


def result_model() -> type[DBTaskResult]:
    """``DBTaskResult``, imported when first needed (it imports this module)."""
    from dbtasks.models.results import DBTaskResult

    return DBTaskResult
