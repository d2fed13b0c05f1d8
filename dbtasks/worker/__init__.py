"""The worker behind ``manage.py dbtasks_worker``.

- ``loop.py``: the ``Worker``: claim, hand rows to threads, stop cleanly.
- ``options.py``: its flags, id and queues.
- ``inflight.py``: which claimed rows it holds and how many threads they use.
- ``claiming.py``: its claims; ``alone.py``: tasks that run alone after their
  worker died under them (a poison pill takes down only itself).
- ``pool.py``: the task threads; ``execution.py``: running one row;
  ``outcomes.py``: closing its attempt with the outcome;
  ``connections.py``: keeping a thread's connection.
- ``maintenance.py``: the chores between claims (``recovery.py``,
  ``schedules.py``, hand-backs, purge); ``heartbeat.py``: proof of life,
  also from a child process (``pulse.py``, ``pulse_child.py``).
- ``stopping.py``: the grace period and what is given back after it;
  ``outage.py``: waiting out a database that refuses connections.
- ``signals.py``: SIGTERM and SIGINT; ``interrupts.py``: asking running
  attempts to stop (cancel requests, timeouts, stuck threads, and attempts
  closed under a running task: ``fencing.py``).
"""

from __future__ import annotations

from dbtasks.worker.loop import Worker
from dbtasks.worker.options import WorkerOptions
from dbtasks.worker.options import make_worker_id
from dbtasks.worker.options import select_queues
from dbtasks.worker.stopping import EXIT_FORCED
from dbtasks.worker.stopping import EXIT_HUNG
from dbtasks.worker.stopping import EXIT_OK
from dbtasks.worker.stopping import EXIT_STALLED

__all__ = [
    "EXIT_FORCED",
    "EXIT_HUNG",
    "EXIT_OK",
    "EXIT_STALLED",
    "Worker",
    "WorkerOptions",
    "make_worker_id",
    "select_queues",
]
