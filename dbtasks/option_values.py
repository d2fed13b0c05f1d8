"""The building blocks of OPTIONS parsing: durations, numbers, dicts, unknown keys.

Each raises ``OptionError`` naming the key (as the user wrote it, e.g.
``TASKS['default']['OPTIONS']['purge']['finished']``) and the wrong value.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from collections.abc import Mapping
from datetime import timedelta
from typing import Any


class OptionError(ValueError):
    """A value in the backend's OPTIONS is wrong."""


_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-z]+)\s*$", re.IGNORECASE)
_UNITS = {
    "ms": 0.001,
    "millisecond": 0.001,
    "milliseconds": 0.001,
    "s": 1,
    "sec": 1,
    "second": 1,
    "seconds": 1,
    "m": 60,
    "min": 60,
    "minute": 60,
    "minutes": 60,
    "h": 3600,
    "hour": 3600,
    "hours": 3600,
    "d": 86400,
    "day": 86400,
    "days": 86400,
    "w": 604800,
    "week": 604800,
    "weeks": 604800,
}


def parse_duration(value: object, *, key: str) -> timedelta:
    """Parse ``"10 days"``, ``"30 seconds"``, ``"500 ms"`` (or a timedelta).

    A number without a unit is refused: ``"30"`` could mean seconds or days,
    and guessing wrong silently keeps data ten thousand times too long.
    """
    if isinstance(value, timedelta):
        if value < timedelta(0):
            raise OptionError(f"{key} must not be negative, got {value!r}.")
        return value
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise OptionError(f"{key} must be a duration such as '10 days', got {value!r}.")
    if isinstance(value, int | float) or re.fullmatch(r"\s*\d+(\.\d+)?\s*", value):
        raise OptionError(
            f"{key} needs a unit, got {value!r}: write for example '{value} seconds' "
            f"or '{value} days'."
        )
    match = _DURATION_RE.match(value)
    if not match or match.group(2).lower() not in _UNITS:
        raise OptionError(
            f"{key} must be a duration such as '10 days' or '30 seconds', got {value!r}."
        )
    amount, unit = match.groups()
    try:
        return timedelta(seconds=float(amount) * _UNITS[unit.lower()])
    except OverflowError:
        # timedelta tops out at 999,999,999 days; without this a typo in a
        # setting would crash backend construction instead of failing the check.
        raise OptionError(f"{key} is too long, got {value!r}.") from None


def optional_duration(value: object, *, key: str) -> timedelta | None:
    return None if value is None else parse_duration(value, key=key)


def positive_int(value: object, *, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise OptionError(f"{key} must be a positive integer, got {value!r}.")
    return value


def optional_size(value: object, *, key: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise OptionError(
            f"{key} must be a number of bytes (a positive integer) or None, got {value!r}."
        )
    return value


def factor(value: object, *, key: str) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value < 0
    ):
        raise OptionError(f"{key} must be a number of at least 0, got {value!r}.")
    return value


def mapping(value: object, *, key: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise OptionError(f"{key} must be a dict, got {value!r}.")
    return value


def reject_unknown(options: Mapping[str, Any], allowed: Iterable[str], *, key: str) -> None:
    unknown = sorted(set(options) - set(allowed), key=str)
    if unknown:
        raise OptionError(
            f"{key}[{unknown[0]!r}] is not a known option; "
            f"known options are: {', '.join(sorted(allowed))}."
        )


def optional_positive_duration(value: object, *, key: str) -> timedelta | None:
    """A duration more than 0, or None (no limit)."""
    timeout = optional_duration(value, key=key)
    if timeout is not None and timeout <= timedelta(0):
        raise OptionError(f"{key} must be more than 0 (or None: no limit), got {value!r}.")
    return timeout


def parse_queues(alias: str, queues: object) -> set[str]:
    """Validate ``TASKS[alias]["QUEUES"]``: a list of queue names (empty: any name)."""
    key = f"TASKS[{alias!r}]['QUEUES']"
    if not isinstance(queues, list | tuple):
        raise OptionError(f"{key} must be a list of queue names, got {queues!r}.")
    for name in queues:
        if not isinstance(name, str) or not name.strip():
            raise OptionError(f"{key} must hold queue names (non-empty strings), got {name!r}.")
    return set(queues)
