"""What a worker is told: its flags, its id and the queues it serves."""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Iterable
from dataclasses import dataclass

from dbtasks.models import MAX_LENGTH_WORKER_ID


def make_worker_id(name: str | None = None) -> str:
    """Return an id unique to this process: name (or host), pid and a random part."""
    prefix = (name or socket.gethostname() or "worker")[: MAX_LENGTH_WORKER_ID - 30]
    return f"{prefix}:{os.getpid()}:{secrets.token_hex(4)}"


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerOptions:
    """How one worker process behaves (the command's flags)."""

    backend_name: str = "default"
    queues: tuple[str, ...] | None = None  # None: every queue of the backend
    excluding: tuple[str, ...] = ()
    name: str | None = None
    threads: int = 1
    oneshot: bool = False
    delay_min: float = 0.05  # seconds
    delay_max: float = 0.25
    max_tasks: int | None = None
    grace: float = 25.0
    max_hung_threads: int | None = None  # None: as many as ``threads``
    heartbeat_process: bool = True  # beat from a child process too (pulse.py)


def select_queues(
    configured: Iterable[str], only: Iterable[str] | None, excluding: Iterable[str]
) -> tuple[str, ...]:
    """The queues a worker serves: ``only`` (or all configured) minus ``excluding``."""
    configured = set(configured)
    if not configured and not only:
        # Empty QUEUES means the backend takes any queue name (Django's rule),
        # so there is no list to serve by default.
        raise ValueError("The backend accepts any queue name (QUEUES is empty); pass --queue.")
    chosen = set(only) if only else configured
    unknown = (chosen | set(excluding)) - configured if configured else set()
    if unknown:
        raise ValueError(
            f"Unknown queue(s) {', '.join(sorted(unknown))}; "
            f"the backend has {', '.join(sorted(configured))}."
        )
    chosen -= set(excluding)
    if not chosen:
        raise ValueError("No queue left to serve.")
    return tuple(sorted(chosen))
