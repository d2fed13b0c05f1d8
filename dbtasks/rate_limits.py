"""Rate limits: at most ``limit`` task starts per ``period`` for a key, across all workers.

Declared in OPTIONS, per queue or per task path, like concurrency limits::

    "OPTIONS": {
        "queues": {"ntfy": {"rate_limit": {"limit": 10, "period": "1 second"}}},
        "tasks": {
            "app.tasks.sync_tenant": {
                "rate_limit": {"limit": 60, "period": "1 minute", "key": "tenant_id"},
            },
        },
    }

The key is built as a concurrency key is (``dbtasks.concurrency.limit_key``):
the queue or the task path, narrowed by an argument or a key function. No
window of ``period`` ever holds more than ``limit`` starts of one key,
whatever the number of workers (a sliding window up to 100 per period,
evenly spaced starts above). A task waiting for its slot stays READY,
outside the claim's index, uses no attempt and holds up no other key; see
``dbtasks.sql.rate_limits`` for the bucket rows and the claim.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import ClassVar

from dbtasks.concurrency import KeyedLimit
from dbtasks.concurrency import key_name
from dbtasks.option_values import OptionError
from dbtasks.option_values import mapping
from dbtasks.option_values import parse_duration
from dbtasks.option_values import positive_int
from dbtasks.option_values import reject_unknown

_KEYS = ("limit", "period", "key")
# Spacing finer than this is below what a worker's claim can keep to.
MIN_INTERVAL = timedelta(milliseconds=1)


@dataclass(frozen=True, slots=True)
class RateLimit(KeyedLimit):
    """``limit`` starts per ``period`` per key (the key: see ``KeyedLimit``)."""

    what: ClassVar[str] = "rate limit"

    limit: int
    period: timedelta
    key: str | None = None
    scope: str | None = None

    @property
    def interval(self) -> timedelta:
        """The least time between two starts of one key."""
        return self.period / self.limit


def parse_rate_limit(value: object, *, key: str, scope: str | None) -> RateLimit | None:
    """Validate one ``"rate_limit"`` option: {"limit": N, "period": duration, "key": ...}."""
    if value is None:
        return None
    options = mapping(value, key=key)
    reject_unknown(options, _KEYS, key=key)
    for required, meaning in (("limit", "how many starts"), ("period", "per how long")):
        if required not in options:
            raise OptionError(f"{key}[{required!r}] is required: {meaning}.")
    limit = positive_int(options["limit"], key=f"{key}['limit']")
    period = parse_duration(options["period"], key=f"{key}['period']")
    if period / limit < MIN_INTERVAL:
        raise OptionError(
            f"{key}['period'] must leave at least 1 ms between starts (period / limit), "
            f"got {options['period']!r} for {limit} starts."
        )
    return RateLimit(limit=limit, period=period, key=key_name(options, key=key), scope=scope)
