"""Step 9 of the tour: delete old results, as the purge policy says.

One function does it for the three callers: the worker every
``purge.interval``, the recurring task ``dbtasks.tasks.purge_expired_results``
and ``manage.py dbtasks_purge``. The deletes themselves, in batches so a
large purge never holds a long lock, are in ``dbtasks/sql/purge.py``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from datetime import timedelta

from dbtasks.backend import DatabaseBackend
from dbtasks.sql.purge import Kind
from dbtasks.sql.purge import purge_empty_workflows
from dbtasks.sql.purge import purge_older
from dbtasks.sql.rate_limits import purge_idle_buckets


def purge_expired(
    backend: DatabaseBackend,
    *,
    now: datetime,
    ages: Mapping[Kind, timedelta | None] | None = None,
    limit: int | None = None,
) -> dict[Kind, int]:
    """Delete ``backend``'s results older than their age; return how many of each kind.

    ``ages`` defaults to the purge policy (``finished`` by finish time,
    ``unfinished`` by enqueue time); an age of None keeps that kind forever.
    ``limit`` caps the rows deleted of each kind.
    """
    policy = backend.config.purge
    if ages is None:
        ages = {"finished": policy.finished, "unfinished": policy.unfinished}
    deleted: dict[Kind, int] = {}
    for kind, age in ages.items():
        deleted[kind] = 0
        if age is not None:
            deleted[kind] = purge_older(
                kind,
                db=backend.db_alias,
                backend_name=backend.alias,
                before=now - age,
                batch_size=policy.batch_size,
                limit=limit,
            )
    if any(deleted.values()):
        purge_empty_workflows(
            db=backend.db_alias, backend_name=backend.alias, batch_size=policy.batch_size
        )
    # One small row per rate-limited key ever seen (a key per tenant, say).
    purge_idle_buckets(backend.db_alias, backend.alias, now)
    return deleted
