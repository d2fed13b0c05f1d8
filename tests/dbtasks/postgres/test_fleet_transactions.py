"""A host cut off inside one of dbtasks' transactions does not hold its row locks for hours.

A worker gives a concurrency slot back (closing a limited task, or
repairing the slots' counts) inside a transaction. Cut off between two of
its statements, its session stays open on the server, idle in transaction,
holding the slot's lock until the server finds the connection dead (over
two hours with default TCP keepalives), and every worker that recovers or
repairs those rows waits as long. So dbtasks' own transactions ask the
server to end them once idle for ``heartbeat_timeout``
(``dbtasks/sql/transactions.py``).

The test makes the window certain: it holds the slot's row itself, so the
cut host waits there inside its transaction; then it cuts the host and
lets go. (The fleet and its hosts: ``tests/fleet.py``.)
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import psycopg
from django.db import connections

from dbtasks.models import SUCCESSFUL
from dbtasks.models import DBSemaphore
from dbtasks.models import DBTaskAttempt
from dbtasks.models import DBTaskResult
from tests import tasks
from tests.dbtasks.helpers import override_options
from tests.fleet import ALIAS
from tests.fleet import FLEET_TEST
from tests.fleet import OPTIONS
from tests.fleet import RECOVERY_BOUND
from tests.fleet import now
from tests.fleet import sessions_of
from tests.live import patience
from tests.live import wait_until
from tests.testapp.models import TaskRun

pytestmark = FLEET_TEST

LIMITED = {**OPTIONS, "queues": {"other": {"concurrency": {"limit": 5}}}}


@contextmanager
def slots_held(url: str) -> Iterator[None]:
    """Hold every concurrency slot row (as a slow worker would) until the block ends."""
    with psycopg.connect(url) as holder:
        holder.execute(f"SELECT 1 FROM {DBSemaphore._meta.db_table} FOR UPDATE")
        yield
        holder.rollback()


def server_sessions() -> str:
    """Every session on the fleet's database, for a failure's message."""
    with connections[ALIAS].cursor() as cursor:
        cursor.execute(
            "SELECT client_addr, state, wait_event_type, now() - state_change, left(query, 120) "
            "FROM pg_stat_activity WHERE datname = current_database()"
        )
        return "\n".join(map(str, cursor.fetchall()))


def test_a_host_cut_off_inside_a_transaction_releases_its_locks(fleet, settings):
    override_options(settings, **LIMITED)  # the web enqueues with the same limits
    host_a, host_b = fleet.hosts
    cut = fleet.start_worker(host_a, "--queue", "other", options=LIMITED)
    cut.wait_registered()
    other = fleet.start_worker(host_b, "--queue", "default", options=LIMITED)
    other.wait_registered()
    result = tasks.record_run.using(queue_name="other").enqueue("held", 4)
    wait_until(
        lambda: TaskRun.objects.filter(key="held").exists(),
        timeout=60,
        what="host a to start the task",
    )

    # The task runs 4 s: its own close comes after the cut, and never arrives.
    with slots_held(fleet.cluster.url("127.0.0.1", ALIAS)):
        wait_until(
            lambda: ("active", "Lock") in sessions_of(host_a),
            timeout=30,
            what="host a to wait for the slot inside a transaction",
        )
        cut_at = now()
        host_a.cut()
    # Its statement goes on on the server; the rest of its transaction never comes.
    wait_until(
        lambda: ("idle in transaction", "Client") in sessions_of(host_a),
        timeout=30,
        what="host a's session to be left idle in its transaction",
    )
    lost = wait_until(
        lambda: DBTaskAttempt.objects.filter(
            result_id=int(result.id), exception_class_path__endswith=".WorkerLost"
        ).first(),
        timeout=RECOVERY_BOUND + 30,
        what="host b's worker to recover host a's attempt",
        details=lambda: other.describe() + server_sessions(),
    )
    recovered_after = lost.stopped_at - cut_at
    assert recovered_after <= timedelta(seconds=RECOVERY_BOUND + patience(2)), recovered_after
    assert not [state for state, _ in sessions_of(host_a) if state == "idle in transaction"]

    host_a.heal()
    wait_until(
        lambda: DBTaskResult.objects.get(pk=result.id).status == SUCCESSFUL,
        timeout=60,
        what="the task to succeed after the heal",
        details=lambda: cut.describe() + other.describe(),
    )
    row = DBTaskResult.objects.get(pk=result.id)
    assert row.attempt_count == 2
    assert DBSemaphore.objects.get().in_use == 0  # the slot given back once
    print(  # noqa: T201
        f"fleet, cut inside a transaction: recovered after "
        f"{recovered_after.total_seconds():.2f}s (bound {RECOVERY_BOUND:g}s)"
    )
    for worker in (cut, other):
        worker.send(signal.SIGTERM)
        assert worker.wait() == 0, worker.describe()
