"""How the task table is indexed: each index beside the query it serves.

``DBTaskResult.Meta`` (``results.py``) takes these lists as they are. Every
index is partial: it holds only the rows its query reads, so the claim,
staging, recovery and purge cost the same on a table of millions (see
docs/performance.md, "At scale"). The EXPLAIN tests in
tests/dbtasks/postgres/test_explain.py and
tests/dbtasks/integration/test_claim_and_staging.py hold them to it.
"""

from __future__ import annotations

from django.db import models

from dbtasks.models.states import FINISHED
from dbtasks.models.states import READY
from dbtasks.models.states import RUNNING
from dbtasks.models.states import SCHEDULED
from dbtasks.models.states import UNFINISHED

RESULT_INDEXES: list[models.Index] = [
    # The claim: one index range per queue, READY rows in the order
    # they are claimed. Partial, so the rows a claim does not take
    # (finished, running, scheduled for later, blocked) are not in it,
    # and the queue comes first, so other queues' backlogs are not
    # walked either. available_after orders a priority's rows oldest
    # first (READY rows are due: staging put them there when due).
    # Tasks to run alone are a range of their own in each queue:
    # ordinary claims never read them. Rate-limited rows are left out:
    # they are claimed per key when it has a slot (dbtasks_rate_idx), so
    # a throttled key never sits in these ranges.
    models.Index(
        fields=[
            "backend_name",
            "queue_name",
            "run_alone",
            "-claim_priority",
            "available_after",
            "id",
        ],
        condition=models.Q(status=READY, rate_key=""),
        name="dbtasks_ready_idx",
    ),
    # The rate-limited READY rows: one range per (queue, key), in claim order.
    models.Index(
        fields=[
            "backend_name",
            "queue_name",
            "rate_key",
            "-claim_priority",
            "available_after",
            "id",
        ],
        condition=models.Q(status=READY) & ~models.Q(rate_key=""),
        name="dbtasks_rate_idx",
    ),
    # Staging: the SCHEDULED rows that are due, soonest first.
    models.Index(
        fields=["available_after"],
        condition=models.Q(status=SCHEDULED),
        name="dbtasks_scheduled_idx",
    ),
    # Lost-worker recovery looks up RUNNING rows by worker.
    models.Index(
        fields=["worker_id"],
        condition=models.Q(status=RUNNING),
        name="dbtasks_running_idx",
    ),
    # The two purge queries.
    models.Index(
        fields=["finished_at"],
        condition=models.Q(status__in=FINISHED),
        name="dbtasks_finished_idx",
    ),
    models.Index(
        fields=["enqueued_at"],
        condition=models.Q(status__in=UNFINISHED),
        name="dbtasks_unfinished_idx",
    ),
    # Cancellations (few): counted per minute, listed and filtered by the ops side.
    models.Index(
        fields=["cancelled_at"],
        condition=models.Q(cancelled_at__isnull=False),
        name="dbtasks_cancelled_idx",
    ),
    models.Index(
        fields=["cancel_requested_at"],
        condition=models.Q(cancel_requested_at__isnull=False),
        name="dbtasks_cancel_requested_idx",
    ),
    # Concurrency limits: counting a key's slot holders, finding its BLOCKED rows.
    models.Index(
        fields=["backend_name", "concurrency_key", "status"],
        condition=~models.Q(concurrency_key=""),
        name="dbtasks_concurrency_idx",
    ),
]
RESULT_CONSTRAINTS: list[models.BaseConstraint] = [
    # Unique tasks: the database, not a read before the write, keeps a
    # second unfinished row with the same key out (enqueue_unique).
    models.UniqueConstraint(
        fields=["backend_name", "unique_key"],
        condition=models.Q(status__in=UNFINISHED) & ~models.Q(unique_key=""),
        name="dbtasks_unique_unfinished",
    ),
]
