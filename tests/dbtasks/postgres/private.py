"""A private Postgres cluster and a PgBouncer, made by a test and removed after it.

``private_cluster()`` starts a cluster of ``tests/pg_cluster.py`` on the
first free port of 5441-5449 with the ``max_connections`` a test asks for,
and makes a login role without superuser rights (the reserved slots stay
for the test's own sessions) owning a migrated database. ``pgbouncer()``
starts Debian's ``/usr/sbin/pgbouncer`` in transaction mode on the first
free port of 6441-6449. Each holds its port (``reserved_port()``) while it
runs, so two test runs on one machine never start two on one port. Both skip the
test, saying why, when they cannot be made (not root, no initdb, no pgbouncer).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.live import manage
from tests.live import patience
from tests.live import wait_until
from tests.netns import CannotMake
from tests.pg_cluster import Cluster
from tests.pg_cluster import port_is_free
from tests.pg_cluster import reserved_port

CLUSTER_PORTS = range(5441, 5450)
POOLER_PORTS = range(6441, 6450)
PGBOUNCER = Path("/usr/sbin/pgbouncer")
ROLE = "worker"
DATABASE = "dbtasks"


def app_env(url: str, **extra: str) -> dict[str, str]:
    """A dbtasks process's environment on ``url`` with the test settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TEST_TASK", "PGAPPNAME"))}
    return env | {
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": url,
        "PYTHONUNBUFFERED": "1",
        **extra,
    }


@dataclass
class Server:
    """A private cluster with the role and its database made."""

    cluster: Cluster
    _sessions: threading.local = field(default_factory=threading.local)
    _opened: list[psycopg.Connection[Any]] = field(default_factory=list)

    def url(self, user: str = ROLE) -> str:
        return f"postgres://{user}@127.0.0.1:{self.cluster.port}/{DATABASE}"

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Run ``sql`` as the superuser (a reserved slot) and return its rows.

        On one connection per thread, kept: a test that connected for each
        query, every 20 ms, could find the reserved slots all taken on a
        loaded machine, the backend of its previous query not yet gone.
        """
        session = getattr(self._sessions, "connection", None)
        if session is None:
            session = psycopg.connect(self.url("postgres"), autocommit=True)
            self._sessions.connection = session
            self._opened.append(session)
        return session.execute(sql, params).fetchall()

    def close(self) -> None:
        for session in self._opened:
            session.close()


@contextlib.contextmanager
def private_cluster(*, max_connections: int) -> Iterator[Server]:
    """A running cluster with ``max_connections``, its database migrated; removed after."""
    if os.geteuid() != 0:
        pytest.skip("needs root, to run initdb and a private cluster as the postgres user")
    with reserved_port(CLUSTER_PORTS, "a private Postgres cluster") as port:
        try:
            cluster = Cluster(port, addresses=[], trust=[], max_connections=max_connections)
        except CannotMake as reason:
            pytest.skip(f"cannot make a private Postgres cluster: {reason}")
        server = None
        try:
            with psycopg.connect(cluster.url("127.0.0.1", "postgres"), autocommit=True) as admin:
                admin.execute(f"CREATE ROLE {ROLE} LOGIN")
                admin.execute(f"CREATE DATABASE {DATABASE} OWNER {ROLE}")
            server = Server(cluster)
            result = manage("migrate", "--no-input", env=app_env(server.url()), timeout=120)
            if result.returncode != 0:
                raise RuntimeError(f"migrate failed:\n{result.stdout}{result.stderr}")
            yield server
        finally:
            if server is not None:
                server.close()
            cluster.close()


@dataclass
class Pooler:
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    def url(self, database: str, user: str = "postgres") -> str:
        return f"postgres://{user}@127.0.0.1:{self.port}/{database}"


def _as_postgres() -> dict[str, Any]:
    """Popen's arguments to run as ``postgres`` when root (pgbouncer refuses root)."""
    if os.geteuid() != 0:
        return {}
    try:
        return {"user": "postgres", "group": pwd.getpwnam("postgres").pw_gid}
    except KeyError:
        pytest.skip("running as root, and there is no postgres user to run pgbouncer as")


@contextlib.contextmanager
def pgbouncer(server_port: int, *, pool_size: int = 4) -> Iterator[Pooler]:
    """PgBouncer in transaction mode in front of 127.0.0.1:``server_port``; stopped after."""
    if not PGBOUNCER.exists():
        pytest.skip(f"no {PGBOUNCER} (apt-get install pgbouncer)")
    owner = _as_postgres()
    with reserved_port(POOLER_PORTS, "PgBouncer") as port:
        yield from _run_pgbouncer(port, server_port, pool_size, owner)


def _run_pgbouncer(
    port: int, server_port: int, pool_size: int, owner: dict[str, Any]
) -> Iterator[Pooler]:
    directory = Path(tempfile.mkdtemp(prefix="dbtasks-pgbouncer-"))
    (directory / "users.txt").write_text('"postgres" ""\n')
    # ignore_startup_parameters: the test settings ask every session for
    # synchronous_commit off (tests/settings.py); a transaction pooler
    # cannot keep a session's settings, and refuses the connection unless
    # told to drop them.
    (directory / "pgbouncer.ini").write_text(
        f"""[databases]
* = host=127.0.0.1 port={server_port}
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {directory / "users.txt"}
pool_mode = transaction
default_pool_size = {pool_size}
max_client_conn = 500
ignore_startup_parameters = options
logfile = {directory / "pgbouncer.log"}
"""
    )
    if owner:
        for path in [directory, *directory.iterdir()]:
            os.chown(path, pwd.getpwnam("postgres").pw_uid, -1)
    process = subprocess.Popen(
        [str(PGBOUNCER), str(directory / "pgbouncer.ini")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        **owner,
    )
    pooler = Pooler(port, process, directory / "pgbouncer.log")
    try:

        def listening() -> bool:
            if process.poll() is not None:
                pytest.fail(f"pgbouncer exited with {process.returncode}:\n{_tail(pooler.log)}")
            return not port_is_free(port)

        wait_until(listening, timeout=30, what="pgbouncer to listen")
        yield pooler
    finally:
        process.terminate()
        try:
            process.wait(timeout=patience(10))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        sys.stdout.write(f"--- pgbouncer log ---\n{_tail(pooler.log)}\n")
        shutil.rmtree(directory, ignore_errors=True)


def _tail(path: Path) -> str:
    return path.read_text(errors="replace")[-5000:] if path.exists() else ""
