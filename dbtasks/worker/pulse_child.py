"""The heartbeat process's program: beat for a parent worker until it is gone.

Started by ``dbtasks/worker/pulse.py`` as ``python -P pulse_child.py``, so it
imports neither the project nor dbtasks (whose worker package needs the app
registry): only the standard library and Django's database layer, set up
with the parent's connection settings. It reads its orders, pickled, from
stdin, and then keeps stdin open: the parent holds the other end, so when
the parent exits, however it dies (SIGKILL too), the read sees end of file
and this process exits at once.

Every ``interval`` it writes the parent's ``heartbeat_at``, unless the
parent is stopped (SIGSTOP, a debugger): a paused worker must look as dead
as it is, so others recover its attempts. It ignores SIGINT and SIGTERM,
which a terminal or a service manager send to the whole process group: the
parent decides when it stops, and its exit ends this process.
"""

from __future__ import annotations

import logging
import os
import pickle
import select
import signal
import sys
from typing import Any

logger = logging.getLogger("dbtasks.worker.pulse")


def parent_is_stopped(pid: int) -> bool:
    """Whether ``pid`` is stopped (Linux: its state in /proc is T or t)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            # "pid (comm) state ...": comm may hold spaces and parentheses.
            state = stat.read().rpartition(b")")[2].split()[0]
    except (OSError, IndexError):
        return False  # no /proc (not Linux): beat as long as the parent lives
    return state in {b"T", b"t"}


def beat_sql(orders: dict[str, Any], vendor: str) -> tuple[str, bool]:
    """The UPDATE, and whether it takes the time as a parameter (no server clock)."""
    table, column, key = orders["table"], orders["column"], orders["key"]
    if vendor == "postgresql":
        # The database server's time, as every dbtasks time (dbtasks/clock.py).
        return f"UPDATE {table} SET {column} = clock_timestamp() WHERE {key} = %s", False
    return f"UPDATE {table} SET {column} = %s WHERE {key} = %s", True


def main() -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    orders: dict[str, Any] = pickle.load(sys.stdin.buffer)  # from our own parent, trusted
    sys.path[:] = orders["sys_path"]
    logging.basicConfig(format="%(levelname)s dbtasks heartbeat process: %(message)s")

    import django
    from django.conf import settings
    from django.db import DatabaseError
    from django.db import connections
    from django.utils import timezone

    settings.configure(DATABASES={"default": orders["database"]}, USE_TZ=True, TIME_ZONE="UTC")
    django.setup()  # no apps: only so that Django knows it is ready for queries
    connection = connections["default"]
    sql, timed = beat_sql(orders, connection.vendor)
    parent, interval = orders["parent"], orders["interval"]
    stdin = sys.stdin.buffer.fileno()
    while True:
        readable, _, _ = select.select([stdin], [], [], interval)
        if readable and not os.read(stdin, 1):
            break  # the parent is gone (or closed our stdin to stop us)
        if parent_is_stopped(parent):
            continue
        params = [orders["worker_id"]]
        if timed:
            params.insert(0, connection.ops.adapt_datetimefield_value(timezone.now()))
        try:
            with connection.cursor() as cursor:
                cursor.execute(sql, params)
        except DatabaseError as error:
            # The parent's own heartbeat says more; try again next time.
            logger.warning("heartbeat failed: %s", error)
            connection.close()
    connection.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
