"""What the orchestrator and the arm subprocesses share: arms, statistics, paths.

An *arm* is one queue system on one store (``dbtasks/sqlite``,
``django-tasks-db/postgres``, ``celery/redis``...). Every measurement runs
in a fresh subprocess started with the arm's interpreter and environment
(``bench.runner``), so arms never share an interpreter, a connection or a
warm cache.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import asdict
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = ROOT / "bench"
RESULT_MARK = "BENCH-RESULT "

DBTASKS = "dbtasks"
TASKSDB = "tasksdb"
CELERY = "celery"
SYSTEM_LABELS = {DBTASKS: "dbtasks", TASKSDB: "django-tasks-db", CELERY: "celery"}


@dataclass(frozen=True, slots=True)
class Arm:
    """One system on one store, and how to start a Python process for it."""

    system: str  # DBTASKS, TASKSDB or CELERY
    store: str  # "sqlite", "postgres" or "redis"
    python: str  # the interpreter of the environment it runs in
    env: dict[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"{SYSTEM_LABELS[self.system]}/{self.store}"

    @property
    def uses_django(self) -> bool:
        return self.system in {DBTASKS, TASKSDB}

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Arm:
        return cls(**data)


@dataclass(frozen=True, slots=True)
class Metric:
    """One number a figure reports per arm and round."""

    key: str
    label: str
    unit: str  # "/s", "ms", "MiB", "", "%", "x"
    higher_is_better: bool = True
    digits: int = 0
    ratio: bool = True  # False for numbers that are already ratios


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else math.nan


def percentile(values: Sequence[float], fraction: float) -> float:
    """The ``fraction`` quantile (0..1), linear between closest ranks."""
    if not values:
        return math.nan
    ordered = sorted(values)
    position = (len(ordered) - 1) * fraction
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def summary(values: Sequence[float | None]) -> dict[str, float]:
    """Median, min and max of what the rounds measured."""
    clean = [value for value in values if value is not None and not math.isnan(value)]
    if not clean:
        return {"median": math.nan, "min": math.nan, "max": math.nan, "n": 0}
    return {"median": median(clean), "min": min(clean), "max": max(clean), "n": len(clean)}


def rotated[T](items: Sequence[T], turn: int) -> list[T]:
    """``items`` started at position ``turn``: each round starts with another arm."""
    if not items:
        return []
    turn %= len(items)
    return [*items[turn:], *items[:turn]]
