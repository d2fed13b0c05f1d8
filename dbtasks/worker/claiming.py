"""A worker's claims: how many rows, of which kind, registered as they commit.

``Worker.claim`` (the main loop, and on SQLite a task thread claiming its
own next task) comes here. The claim itself is ``dbtasks/sql/claim.py``;
``alone.py`` decides whether to claim ordinary rows or one to run alone, and
``throttle.py`` claims the rate-limited keys' rows before the ordinary ones.
Under a backlog of quick tasks a claim takes a few rows more than its
threads need (``ahead.py``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dbtasks.models import DBTaskResult
from dbtasks.sql.claim import claim
from dbtasks.sql.transactions import one_writer

if TYPE_CHECKING:
    from dbtasks.worker.loop import Worker


def claim_rows(worker: Worker, limit: int | None) -> list[DBTaskResult]:
    """Claim up to ``limit`` rows (default: one per free thread) for ``worker``, and more ahead.

    The rows are registered in ``in_flight`` under ``claim_lock``, which
    ``Maintenance.hand_back_lost_claims`` relies on. Those beyond ``limit``
    come last: claimed ahead of a free thread (``ahead.py``), they wait in
    the pool's queue.
    """
    in_flight = worker.in_flight
    with worker.claim_lock:
        with in_flight.lock:
            if limit is None:
                # None while a task thread could not connect a moment ago (outage.py).
                limit = 0 if worker.outage.claims_held() else in_flight.free_threads()
            for_threads = limit
            if limit > 0 and not worker.stopping.is_set():
                limit += worker.ahead.extra()
            if worker.options.max_tasks is not None:
                limit = min(limit, worker.options.max_tasks - in_flight.claimed)
            plan = worker.alone.plan(limit)
        rows: list[DBTaskResult] = []
        for count, alone in plan:
            now = worker.clock()
            with one_writer(worker.db):  # SQLite: after this worker's other writers
                # Rate-limited keys first (throttle.py): a slot not taken when it comes is lost.
                rows = [] if alone else worker.throttle.claim(limit=count, now=now)
                rows += claim(
                    db=worker.db,
                    backend_name=worker.backend.alias,
                    queues=[name for name in worker.queues if name not in worker.paused],
                    worker_id=worker.id,
                    limit=count - len(rows),
                    now=now,
                    alone=alone,
                )
            if rows or not alone:
                break
            worker.alone.none_left()
        in_flight.add(rows, ahead=max(0, len(rows) - for_threads))
    return rows
