"""A heartbeat that task code cannot starve: a small child process per worker.

The heartbeat thread (``heartbeat.py``) shares the interpreter with the
tasks. Python threads take turns holding the GIL, and code in C that does
not release it (a catastrophic regular expression, ``json.dumps`` of a huge
value) keeps every other thread of the process waiting: a task holding the
GIL for longer than ``heartbeat_timeout`` made its healthy worker look dead,
and its attempt was closed as ``WorkerLost`` and run again.

So a worker starts one child process (``pulse_child.py``) that writes its
``heartbeat_at`` every ``heartbeat_interval`` on its own database connection,
in its own interpreter. The worker's main thread beats too, between claims
(``heartbeat.Beating``: it also registers the worker again if it was
presumed lost, measures the clock and watches the running attempts, none
of which must be on time), on its own connection, so the heartbeat thread
and its connection are not needed; the child is what keeps the heartbeat
on time while a task holds the GIL.

The semantics of a heartbeat stay: the child beats only while its parent
can run.

- Parent killed (SIGKILL, a crash): the child's stdin is a pipe from the
  parent; the kernel closes it with the parent, the child reads end of file
  and exits at once. The heartbeat stops, and recovery works as before.
- Parent stopped (SIGSTOP, a debugger, Ctrl-Z): the child reads the parent's
  state in ``/proc`` before each beat and skips it while the parent is
  stopped, so a paused worker's attempts are recovered after the timeout as
  before; when it resumes, its attempts are fenced (``fencing.py``).
  Without ``/proc`` (not Linux) the child keeps beating for a stopped parent.
- A whole host frozen or cut off: neither beats; as before.

It costs one process (about 45 MB resident) and one database connection
per worker, the one the heartbeat thread would hold.
It is not used when the worker cannot share its database with a child
(SQLite in memory) or runs on a clock of the caller's (tests).
"""

from __future__ import annotations

import logging
import os
import pickle
import subprocess
import sys
from pathlib import Path

from django.db import connections

from dbtasks.models import DBWorker

logger = logging.getLogger(__name__)

PROGRAM = Path(__file__).with_name("pulse_child.py")


def can_share(alias: str) -> bool:
    """Whether a child process can open this worker's database."""
    connection = connections[alias]
    if connection.vendor != "sqlite":
        return True
    # The SQLite backend's own test: ":memory:", or a "mode=memory" URI.
    from django.db.backends.sqlite3.creation import DatabaseCreation

    return not DatabaseCreation.is_in_memory_db(connection.settings_dict["NAME"])


class Pulse:
    """The heartbeat child process of one worker."""

    def __init__(self, *, db: str, worker_id: str, interval: float) -> None:
        self.db = db
        self.worker_id = worker_id
        self.interval = interval
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def start(self) -> None:
        """Start the child and hand it its orders; it beats until ``stop()`` or our exit."""
        connection = connections[self.db]
        database = dict(connection.settings_dict)
        # One connection, not a pool of them.
        database["OPTIONS"] = {k: v for k, v in database["OPTIONS"].items() if k != "pool"}
        quote = connection.ops.quote_name
        orders = {
            "sys_path": sys.path,
            "database": database,
            "table": quote(DBWorker._meta.db_table),
            "column": quote(str(DBWorker._meta.get_field("heartbeat_at").column)),
            "key": quote(str(DBWorker._meta.get_field("worker_id").column)),
            "worker_id": self.worker_id,
            "parent": os.getpid(),
            "interval": self.interval,
        }
        self.process = subprocess.Popen(
            [sys.executable, "-P", str(PROGRAM)],
            stdin=subprocess.PIPE,
            close_fds=True,
            # Not a new session: Ctrl-Z stops it with the worker.
        )
        assert self.process.stdin is not None
        self.process.stdin.write(pickle.dumps(orders))
        self.process.stdin.flush()  # kept open: its end of file tells the child to exit
        logger.info("Worker %s: heartbeat process %d started", self.worker_id, self.pid)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        """Close the child's stdin (it exits at once) and reap it."""
        process = self.process
        if process is None:
            return
        assert process.stdin is not None
        process.stdin.close()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            logger.warning("Heartbeat process %d did not exit; killing it", process.pid)
            process.kill()
            process.wait()
