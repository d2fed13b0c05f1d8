"""OPTIONS['purge']: how long results are kept, and how often workers purge."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from dbtasks.option_values import optional_duration as _optional_duration
from dbtasks.option_values import positive_int as _positive_int
from dbtasks.option_values import reject_unknown as _reject_unknown

_PURGE_KEYS = ("finished", "unfinished", "interval", "batch_size")


@dataclass(frozen=True, slots=True)
class PurgePolicy:
    """How long results are kept, and how often workers delete older ones."""

    finished: timedelta | None = timedelta(days=10)
    unfinished: timedelta | None = timedelta(days=20)
    interval: timedelta | None = timedelta(hours=1)
    batch_size: int = 1000


def parse_purge(options: Mapping[str, Any], *, key: str) -> PurgePolicy:
    """Validate ``OPTIONS['purge']``."""
    _reject_unknown(options, _PURGE_KEYS, key=key)
    default = PurgePolicy()
    return PurgePolicy(
        finished=_optional_duration(
            options.get("finished", default.finished), key=f"{key}['finished']"
        ),
        unfinished=_optional_duration(
            options.get("unfinished", default.unfinished), key=f"{key}['unfinished']"
        ),
        interval=_optional_duration(
            options.get("interval", default.interval), key=f"{key}['interval']"
        ),
        batch_size=_positive_int(
            options.get("batch_size", default.batch_size), key=f"{key}['batch_size']"
        ),
    )
