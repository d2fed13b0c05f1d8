"""A worker's side of rate limits: which keys wait, claiming their slots, when the next comes.

The housekeeping (``maintenance.py``) looks for the rate-limited keys with
READY rows twice a second (``discover``); each claim (``Worker.claim``)
first starts what those keys' buckets allow (``claim``), then claims other
work as usual. When nothing could be claimed, the loop sleeps until the
earliest next slot (``wait_for``) instead of its usual poll delay, if that
comes sooner, so a throttled key runs close to its limit without polling.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING

from dbtasks.models import DBTaskResult
from dbtasks.rate_limits import RateLimit
from dbtasks.sql import rate_limits
from dbtasks.sql.rate_limits import Pair

if TYPE_CHECKING:
    from dbtasks.worker.loop import Worker

logger = logging.getLogger(__name__)

# The most keys one worker follows at once; more wait for a later pass.
MAX_KEYS = 1000
# Woken this much after a slot's time, so the claim finds the slot open.
SLOT_MARGIN = 0.001  # seconds


class Throttle:
    """The rate-limited keys a worker follows, and the next time one has a slot."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.waiting: dict[Pair, RateLimit] = {}
        self.next_slot_at: datetime | None = None
        self._buckets: set[Pair] = set()  # known to exist

    def discover(self) -> None:
        """Find the keys with READY rows on our queues, and make sure each has a bucket.

        Also without any rate limit configured (one empty index range per
        queue): rows left waiting by a limit since removed are released.
        """
        worker = self.worker
        alias, db = worker.backend.alias, worker.db
        found = rate_limits.waiting_keys(db, alias, self._queues(), cap=MAX_KEYS)
        waiting: dict[Pair, RateLimit] = {}
        for pair, task_path in found.items():
            rate_limit = worker.config.policy(pair[0], task_path).rate_limit
            if rate_limit is None:
                released = rate_limits.release(db, alias, pair)
                logger.info(
                    "Rate limit %s on %s no longer configured: %d released", *pair[::-1], released
                )
                continue
            waiting[pair] = rate_limit
        new = {pair: limit for pair, limit in waiting.items() if pair not in self._buckets}
        if new:
            rate_limits.ensure_buckets(db, alias, new, worker.clock())
            self._buckets.update(new)
        self.waiting = waiting

    def claim(self, *, limit: int, now: datetime) -> list[DBTaskResult]:
        """Start up to ``limit`` rate-limited tasks whose keys have a slot now."""
        queues = set(self._queues())
        limits = {pair: rate for pair, rate in self.waiting.items() if pair[0] in queues}
        if not limits:
            self.next_slot_at = None
            return []
        worker = self.worker
        claimed = rate_limits.claim_keys(
            db=worker.db,
            backend_name=worker.backend.alias,
            limits=limits,
            worker_id=worker.id,
            limit=limit,
            now=now,
        )
        for pair in claimed.drained:
            self.waiting.pop(pair, None)
        self._buckets -= claimed.missing
        self.next_slot_at = claimed.next_slot_at
        return claimed.rows

    def wait_for(self, delay: float) -> float:
        """How long to sleep when idle: ``delay``, or less if a key's next slot comes sooner."""
        if self.next_slot_at is None:
            return delay
        until = (self.next_slot_at - self.worker.clock()).total_seconds() + SLOT_MARGIN
        return max(0.0, min(delay, until))

    def _queues(self) -> Iterable[str]:
        worker = self.worker
        return [name for name in worker.queues if name not in worker.paused]
