"""A fleet of worker hosts on one machine, for the tests that cut one off.

The ``fleet`` fixture makes two hosts (network namespaces, ``tests/netns.py``)
and a private Postgres cluster (``tests/pg_cluster.py``) that listens on this
side's end of each host's link, and on loopback; migrates a database there;
and routes this process (the web app: it enqueues and watches) to it.
``FleetRun.start_worker`` runs ``dbtasks_worker`` inside a host, with
DATABASE_URL pointing across its link. Workers are killed and their output
printed, the cluster and the hosts removed, however the test ends.

Everything is named after the cluster's port (one of ``PORTS``, the first
no other test run's fleet has): the namespaces ``mcfleet-<port>-<n>`` and
the subnets ``10.77.<(port - 5450) * 10 + n>.0/24``. Tests using it skip
with the reason where namespaces or a cluster cannot be made (not root, no
iproute2, no initdb).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from dataclasses import field
from datetime import datetime
from pathlib import Path

import pytest
from django.db import connection
from django.db import connections

from dbtasks.clock import database_time
from tests.live import manage
from tests.netns import CannotMake
from tests.netns import Fleet
from tests.netns import Host
from tests.netns import Taken
from tests.pg_cluster import Cluster
from tests.pg_cluster import port_is_free
from tests.workers import WorkerProcess
from tests.workers import settings_module

# The marks of a fleet test module: real processes, slow, Postgres only.
FLEET_TEST = [
    pytest.mark.process,
    pytest.mark.slow,
    pytest.mark.skipif(
        connection.vendor != "postgresql",
        reason="SQLite cannot be shared over a network: the fleet test needs Postgres",
    ),
]
PORTS = range(5451, 5460)  # private clusters of the fleet tests, and no one else's
ALIAS = "fleet"  # the cluster's database, in this process's DATABASES (and its name)

HEARTBEAT_INTERVAL = 0.25  # seconds
HEARTBEAT_TIMEOUT = 3.0
OPTIONS = {"heartbeat_interval": "250 ms", "heartbeat_timeout": "3 seconds", "max_attempts": 3}
# The documented bound: a cut host's last beat is at most the cut, and
# another worker looks for lost workers every heartbeat interval.
RECOVERY_BOUND = HEARTBEAT_TIMEOUT + HEARTBEAT_INTERVAL


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

    def start_worker(self, host: Host, *args: str, options: dict[str, object]) -> WorkerProcess:
        """``dbtasks_worker *args`` on ``host``, reaching the cluster across its link."""
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": settings_module(),
            "DATABASE_URL": self.cluster.url(host.server_address, ALIAS),
            "TEST_TASK_OPTIONS": json.dumps(options),
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
    """The cluster's time."""
    return database_time(ALIAS)


def sessions_of(host: Host) -> list[tuple[str, str | None]]:
    """The state and wait event type of each database session coming from ``host``."""
    with connections[ALIAS].cursor() as cursor:
        cursor.execute(
            "SELECT state, wait_event_type FROM pg_stat_activity WHERE client_addr = %s",
            [host.address],
        )
        return list(cursor.fetchall())
