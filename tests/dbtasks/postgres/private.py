"""A private Postgres cluster and a PgBouncer, made by a test and removed after it.

``private_cluster()`` runs ``initdb`` and ``pg_ctl`` (as the ``postgres``
user when the tests run as root: Postgres refuses to run as root) on the
first free port of 5441-5449, with the settings a test asks for (a low
``max_connections``, say), creates a login role without superuser rights
and a migrated database it owns. ``pgbouncer()`` starts Debian's
``/usr/sbin/pgbouncer`` in transaction mode on the first free port of
6441-6449. Both skip the test, saying why, when they cannot be made.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.live import manage
from tests.live import patience

CLUSTER_PORTS = range(5441, 5450)
POOLER_PORTS = range(6441, 6450)
PGBOUNCER = Path("/usr/sbin/pgbouncer")
ROLE = "worker"  # no superuser: the reserved slots stay for the test's own sessions
DATABASE = "dbtasks"


def _free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def _port(ports: range, what: str) -> int:
    for port in ports:
        if _free(port):
            return port
    pytest.skip(f"no free port for {what} in {ports.start}-{ports.stop - 1}")


def _owner() -> dict[str, Any]:
    """Run as ``postgres`` when root (initdb, postgres and pgbouncer refuse root)."""
    if os.geteuid() != 0:
        return {}
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        pytest.skip("running as root, and there is no postgres user to run a cluster as")
    return {"user": "postgres", "group": pwd.getpwnam("postgres").pw_gid}


def _bindir() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: p.parts[-3])
    initdb = found[-1] if found else shutil.which("initdb")
    if initdb is None:
        pytest.skip("no initdb (Debian's postgresql package) to make a private cluster")
    return Path(initdb).parent


def _workdir() -> Path:
    directory = Path(tempfile.mkdtemp(prefix="dbtasks-private-"))
    if os.geteuid() == 0:
        os.chown(directory, pwd.getpwnam("postgres").pw_uid, -1)
    return directory


def _run(argv: list[str], owner: dict[str, Any]) -> None:
    result = subprocess.run(
        argv, capture_output=True, text=True, timeout=patience(60), check=False, **owner
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"{argv[0]} failed ({result.returncode}):\n{result.stdout}{result.stderr}"
        )


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
class Cluster:
    port: int
    directory: Path

    def url(self, user: str = ROLE) -> str:
        return f"postgres://{user}@127.0.0.1:{self.port}/{DATABASE}"

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Run ``sql`` as the superuser (a reserved slot) and return its rows."""
        with psycopg.connect(self.url("postgres"), autocommit=True) as connection:
            return connection.execute(sql, params).fetchall()


@contextlib.contextmanager
def private_cluster(**settings: object) -> Iterator[Cluster]:
    """A running cluster with ``settings`` (``-c name=value``), migrated; removed after."""
    bindir, owner = _bindir(), _owner()
    port = _port(CLUSTER_PORTS, "a private Postgres cluster")
    directory = _workdir()
    data = directory / "data"
    options = " ".join(f"-c {name}={value}" for name, value in settings.items())
    server = f"-p {port} -k {directory} -c listen_addresses=127.0.0.1 -c fsync=off {options}"
    try:
        _run([str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres",
              "--no-sync", "-E", "UTF8"], owner)  # fmt: skip
        _run([str(bindir / "pg_ctl"), "-D", str(data), "-l", str(directory / "log"), "-w",
              "-o", server, "start"], owner)  # fmt: skip
        cluster = Cluster(port, directory)
        cluster_ready(cluster)
        yield cluster
    finally:
        if (data / "postmaster.pid").exists():
            _run([str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"], owner)
        shutil.rmtree(directory, ignore_errors=True)


def cluster_ready(cluster: Cluster) -> None:
    """Create the role and its database, and migrate it as the role."""
    with psycopg.connect(
        f"postgres://postgres@127.0.0.1:{cluster.port}/postgres", autocommit=True
    ) as connection:
        connection.execute(f"CREATE ROLE {ROLE} LOGIN")
        connection.execute(f"CREATE DATABASE {DATABASE} OWNER {ROLE}")
    result = manage("migrate", "--no-input", env=app_env(cluster.url()), timeout=120)
    if result.returncode != 0:
        raise RuntimeError(f"migrate failed:\n{result.stdout}{result.stderr}")


@dataclass
class Pooler:
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    def url(self, database: str, user: str = "postgres") -> str:
        return f"postgres://{user}@127.0.0.1:{self.port}/{database}"


@contextlib.contextmanager
def pgbouncer(server_port: int, *, pool_size: int = 4) -> Iterator[Pooler]:
    """PgBouncer in transaction mode in front of 127.0.0.1:``server_port``; stopped after."""
    if not PGBOUNCER.exists():
        pytest.skip(f"no {PGBOUNCER} (apt-get install pgbouncer)")
    owner = _owner()
    port = _port(POOLER_PORTS, "PgBouncer")
    directory = _workdir()
    (directory / "users.txt").write_text('"postgres" ""\n')
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
logfile = {directory / "pgbouncer.log"}
"""
    )
    if owner:
        for path in directory.iterdir():
            os.chown(path, pwd.getpwnam("postgres").pw_uid, -1)
    process = subprocess.Popen(
        [str(PGBOUNCER), str(directory / "pgbouncer.ini")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        **owner,
    )
    pooler = Pooler(port, process, directory / "pgbouncer.log")
    try:
        _wait_listening(pooler)
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


def _wait_listening(pooler: Pooler) -> None:
    from tests.live import wait_until

    def listening() -> bool:
        if pooler.process.poll() is not None:
            pytest.fail(f"pgbouncer exited with {pooler.process.returncode}:\n{_tail(pooler.log)}")
        return not _free(pooler.port)

    wait_until(listening, timeout=30, what="pgbouncer to listen")


def _tail(path: Path) -> str:
    return path.read_text(errors="replace")[-5000:] if path.exists() else ""
