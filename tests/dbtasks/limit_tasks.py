"""Tasks for the tests of concurrency limits: each records when it started and ended."""

from __future__ import annotations

import os
import time

from dbtasks.compat import task

# Long enough that tasks sharing a key would overlap if nothing stopped them.
WORK = 0.2  # seconds


def record(key: str) -> None:
    from tests.testapp.models import TaskRun

    TaskRun.objects.create(key=key, pid=os.getpid())


@task
def limited(tenant: str, n: int) -> int:
    """Record start and end around a short piece of work."""
    record(f"start:{tenant}:{n}")
    time.sleep(WORK)
    record(f"end:{tenant}:{n}")
    return n


@task
def fails(tenant: str) -> None:
    raise ValueError(f"fails for {tenant}")


def tenant_key(args: list[object], kwargs: dict[str, object]) -> str:
    """A key function: the tenant, whether passed by position or by name."""
    return str(kwargs.get("tenant", args[0] if args else ""))


@task
def report(outcomes: list[dict[str, object]], tenant: str) -> int:
    """A group's callback: records itself like ``limited``."""
    record(f"start:{tenant}:report")
    record(f"end:{tenant}:report")
    return len(outcomes)
