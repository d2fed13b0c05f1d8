"""A fleet on one machine: worker hosts in network namespaces, one cut off mid-task, then healed.

Each worker "host" is a network namespace joined to this one by a veth pair
(``tests/netns.py``); a private Postgres cluster (``tests/pg_cluster.py``)
listens on this side's end of each pair, and on loopback for this process,
which plays the web app: it enqueues the tasks and watches the rows.
Cutting a host takes its link down: nothing tells either end, its queries
hang where they are. The other host's worker must recover the cut host's
attempts within ``heartbeat_timeout`` + one recovery pass (every
``heartbeat_interval``); once the link is back, the cut worker's late
outcomes are refused, and it goes on working.
"""

from __future__ import annotations

import json
import os
import signal
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from dataclasses import field
from datetime import datetime
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection
from django.db import connections

from dbtasks.clock import database_time
from dbtasks.models import FAILED
from dbtasks.models import RUNNING
from dbtasks.models import SUCCESSFUL
from dbtasks.models import DBTaskAttempt
from dbtasks.models import DBTaskResult
from dbtasks.models import DBWorker
from tests import tasks
from tests.live import manage
from tests.live import patience
from tests.live import wait_until
from tests.netns import CannotMake
from tests.netns import Fleet
from tests.netns import Host
from tests.netns import Taken
from tests.pg_cluster import Cluster
from tests.pg_cluster import port_is_free
from tests.testapp.models import TaskRun
from tests.workers import WorkerProcess
from tests.workers import settings_module

pytestmark = [
    pytest.mark.process,
    pytest.mark.slow,
    pytest.mark.skipif(
        connection.vendor != "postgresql",
        reason="SQLite cannot be shared over a network: the fleet test needs Postgres",
    ),
]

PORTS = range(5451, 5460)  # this test's private clusters, and no one else's
ALIAS = "fleet"
HEARTBEAT_INTERVAL = 0.25  # seconds
HEARTBEAT_TIMEOUT = 3.0
# The documented bound: the cut host's last beat is at most the cut, and
# another worker looks for lost workers every heartbeat interval.
RECOVERY_BOUND = HEARTBEAT_TIMEOUT + HEARTBEAT_INTERVAL
OPTIONS = {"heartbeat_interval": "250 ms", "heartbeat_timeout": "3 seconds", "max_attempts": 3}
TASK_SECONDS = 1.5


class FleetRouter:
    """This process, the web app, reads and writes the fleet's database."""

    def db_for_read(self, model: object, **hints: object) -> str:
        return ALIAS

    def db_for_write(self, model: object, **hints: object) -> str:
        return ALIAS


@dataclass
class FleetRun:
    hosts: list[Host]
    cluster: Cluster
    logs: Path
    workers: list[WorkerProcess] = field(default_factory=list)

    def start_worker(self, host: Host, *args: str) -> WorkerProcess:
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": settings_module(),
            "DATABASE_URL": self.cluster.url(host.server_address, ALIAS),
            "TEST_TASK_OPTIONS": json.dumps(OPTIONS),
            "LOG_LEVEL": "INFO",
            "PYTHONUNBUFFERED": "1",
        }
        log = self.logs / f"worker-{len(self.workers) + 1}.log"
        worker = WorkerProcess(list(args), env=env, log=log, prefix=host.command([]))
        self.workers.append(worker)
        return worker


@pytest.fixture
def fleet(django_db_blocker, settings, tmp_path) -> Iterator[FleetRun]:
    """Two hosts, a private cluster reachable from both, migrated; this process routed to it."""
    port, hosts = make_hosts()
    try:
        addresses = [host.server_address for host in hosts.hosts]
        try:
            cluster = Cluster(port, addresses=addresses, trust=["10.77.0.0/16"])
        except CannotMake as error:
            pytest.skip(f"cannot make a private Postgres cluster here: {error}")
        try:
            run = FleetRun(hosts.hosts, cluster, tmp_path)
            yield from migrated(run, django_db_blocker, settings)
        finally:
            cluster.close()
    finally:
        hosts.close()


def make_hosts() -> tuple[int, Fleet]:
    """Two hosts, tagged with the first port of ours no other run has taken; and the port."""
    for port in PORTS:
        if port_is_free(port):
            try:
                return port, Fleet(str(port), count=2, first_net=(port - 5450) * 10 + 1)
            except Taken:
                continue  # another test run's fleet
            except CannotMake as error:
                pytest.skip(f"cannot make worker hosts here: {error}")
    pytest.skip(f"no port in {PORTS.start}-{PORTS.stop - 1} is free for a private cluster")


def migrated(run: FleetRun, django_db_blocker, settings) -> Iterator[FleetRun]:
    run.cluster.create_database(ALIAS)
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": settings_module(),
        "DATABASE_URL": run.cluster.url("127.0.0.1", ALIAS),
    }
    done = manage("migrate", "--no-input", env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    default = connections.settings["default"]
    connections.settings[ALIAS] = {
        **default,
        "NAME": ALIAS,
        "USER": "postgres",
        "PASSWORD": "",
        "HOST": "127.0.0.1",
        "PORT": str(run.cluster.port),
        "CONN_MAX_AGE": 0,
        "TEST": {},
    }
    settings.DATABASE_ROUTERS = [FleetRouter()]
    try:
        with django_db_blocker.unblock():
            yield run
    finally:
        for worker in run.workers:
            worker.kill()
        for number, worker in enumerate(run.workers, 1):
            print(f"--- worker {number} {worker.args} (exit {worker.returncode}) ---")  # noqa: T201
            print(worker.output()[-20_000:])  # noqa: T201
        connections[ALIAS].close()
        del connections[ALIAS]
        del connections.settings[ALIAS]


def now() -> datetime:
    return database_time(ALIAS)


def sessions_of(host: Host) -> list[str]:
    """The states of the database sessions coming from ``host``."""
    with connections[ALIAS].cursor() as cursor:
        cursor.execute("SELECT state FROM pg_stat_activity WHERE client_addr = %s", [host.address])
        return [state for (state,) in cursor.fetchall()]


def running_for(worker_id: str) -> set[int]:
    rows = DBTaskResult.objects.filter(status=RUNNING, worker_id=worker_id)
    return set(rows.values_list("pk", flat=True))


def lost_attempts() -> dict[int, DBTaskAttempt]:
    attempts = DBTaskAttempt.objects.filter(exception_class_path__endswith=".WorkerLost")
    return {attempt.result_id: attempt for attempt in attempts}


def all_succeeded(results) -> bool:
    rows = DBTaskResult.objects.filter(pk__in=[result.id for result in results])
    return rows.filter(status=SUCCESSFUL).count() == len(results)


def test_a_host_cut_off_mid_task_is_recovered_fenced_and_goes_on(fleet):
    host_a, host_b = fleet.hosts
    # Host a alone serves "other": what it runs after the cut shows it still works.
    cut = fleet.start_worker(host_a, "--threads", "3", "--queue", "default,other")
    cut_worker = cut.wait_registered()
    other = fleet.start_worker(host_b, "--threads", "3", "--queue", "default")
    other.wait_registered()
    results = [tasks.record_run.enqueue(f"task-{n}", TASK_SECONDS) for n in range(18)]

    def started_on_a() -> set[int]:
        running = running_for(cut_worker.worker_id)
        started = TaskRun.objects.filter(pid=cut.pid).count()
        return running if running and started >= len(running) else set()

    wait_until(started_on_a, timeout=60, what="host a to be running tasks")
    cut_at = now()
    host_a.cut()
    # Whatever host a sent before the cut has been handled once its sessions are idle.
    wait_until(
        lambda: "active" not in sessions_of(host_a),
        timeout=30,
        what="host a's last queries to finish on the server",
    )
    in_flight = running_for(cut_worker.worker_id)
    assert in_flight, "the cut caught no attempt running on host a"

    wait_until(
        lambda: set(lost_attempts()) >= in_flight,
        timeout=RECOVERY_BOUND + 30,
        what="host b's worker to recover host a's attempts",
    )
    lost = lost_attempts()
    recovered_after = max(lost[pk].stopped_at for pk in in_flight) - cut_at
    assert set(lost) == in_flight
    assert {attempt.worker_id for attempt in lost.values()} == {cut_worker.worker_id}
    # A loaded machine may run the recovery pass a little late.
    assert recovered_after <= timedelta(seconds=RECOVERY_BOUND + patience(2)), recovered_after

    host_a.heal()
    healed_at = now()
    wait_until(
        lambda: all_succeeded(results),
        timeout=90,
        what="every task to succeed",
        details=lambda: cut.describe() + other.describe(),
    )
    discarded = wait_until(
        lambda: (
            cut.output().count("its outcome is discarded") >= len(in_flight)
            and cut.output().count("its outcome is discarded")
        ),
        timeout=60,
        what="host a's late outcomes to be refused",
        details=cut.describe,
    )
    assert discarded == len(in_flight)
    # Queries answered late after the heal did not make host a's clock look off.
    assert "clock is" not in cut.output() + other.output()

    # Host b's worker closed them; the attempts it closed stay closed, and each
    # task ran once more (on whichever host claimed the retry first).
    assert other.output().count(f"worker {cut_worker.worker_id} lost") == len(in_flight)
    for pk in in_flight:
        attempts = list(
            DBTaskAttempt.objects.filter(result_id=pk)
            .order_by("number")
            .values_list("number", "worker_id", "outcome", "exception_class_path")
        )
        assert attempts[0] == (1, cut_worker.worker_id, FAILED, "dbtasks.exceptions.WorkerLost")
        assert [attempt[::2] for attempt in attempts[1:]] == [(2, SUCCESSFUL)], attempts
    rows = DBTaskResult.objects.filter(pk__in=[result.id for result in results])
    key_of = {row.pk: row.args[0] for row in rows}
    runs = Counter(TaskRun.objects.filter(key__startswith="task-").values_list("key", flat=True))
    assert set(runs) == set(key_of.values())  # nothing lost
    # Twice at most, and only what was in flight: host a's run, then host b's.
    assert {key for key, count in runs.items() if count > 1} <= {key_of[pk] for pk in in_flight}
    assert max(runs.values()) <= 2
    duplicated = sum(count - 1 for count in runs.values())
    for row in rows:
        assert row.attempt_count == (2 if row.pk in in_flight else 1), row.pk

    # Healed, host a's worker beats again and takes work.
    later = [tasks.record_run.using(queue_name="other").enqueue(f"later-{n}") for n in range(3)]
    wait_until(
        lambda: all_succeeded(later),
        timeout=60,
        what="host a to run tasks again after the heal",
        details=cut.describe,
    )
    assert set(TaskRun.objects.filter(key__startswith="later-").values_list("pid", flat=True)) == {
        cut.pid
    }
    assert DBWorker.objects.filter(worker_id=cut_worker.worker_id).exists()
    back_at = max(
        DBTaskResult.objects.filter(pk__in=[result.id for result in later]).values_list(
            "finished_at", flat=True
        )
    )
    print(  # noqa: T201
        f"fleet: {len(in_flight)} attempts in flight at the cut, recovered after "
        f"{recovered_after.total_seconds():.2f}s (bound {RECOVERY_BOUND:g}s), "
        f"{duplicated} duplicate runs, {discarded} late outcomes discarded, "
        f"host a ran new work {(back_at - healed_at).total_seconds():.2f}s after the heal"
    )
    for worker in (cut, other):
        worker.send(signal.SIGTERM)
        assert worker.wait() == 0, worker.describe()
