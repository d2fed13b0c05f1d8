"""A private, throw-away Postgres cluster for one test: initdb, pg_ctl, removed at the end.

For tests that need a server configured in a way the shared one is not (here:
listening on the addresses of network namespaces' veth pairs). It is made in
a temporary directory as the ``postgres`` user (initdb refuses root), with
trust authentication for loopback and the networks given, ``fsync`` off (it
holds nothing worth keeping), and stopped and deleted by ``close()``.

``Cluster`` raises ``CannotMake`` with the reason when there is no initdb
or no ``postgres`` user.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.live import patience
from tests.netns import CannotMake

# Debian's layout first (initdb is not on PATH there), then PATH.
INITDB_GLOB = "/usr/lib/postgresql/*/bin/initdb"


def bin_dir() -> Path:
    """The directory of initdb and pg_ctl, the newest version if there are several."""
    found = sorted(glob.glob(INITDB_GLOB), key=lambda path: int(Path(path).parts[-3]))
    initdb = found[-1] if found else shutil.which("initdb")
    if initdb is None:
        raise CannotMake("Postgres' initdb is not installed (Debian: apt-get install postgresql)")
    return Path(initdb).parent


def port_is_free(port: int) -> bool:
    """Whether nothing listens on ``port`` on loopback (at the time of asking)."""
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


@contextlib.contextmanager
def reserved_port(ports: range, what: str) -> Iterator[int]:
    """The first port of ``ports`` nothing listens on and no other test holds, until the end.

    Held by an exclusive lock on a file named for the port: two test runs on
    one machine (two checkouts, or make test beside make test-postgres) that
    both found a port free would start their servers on it, the second
    failing (or, for a pooler, its test talking to the first one's). The lock
    goes with the process, however it ends.
    """
    for port in ports:
        path = Path(tempfile.gettempdir()) / f"messagecenter-tests-port-{port}.lock"
        with path.open("a") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # another test's
            if port_is_free(port):
                yield port
                return
    pytest.skip(f"no free port for {what} in {ports.start}-{ports.stop - 1}")


class Cluster:
    """A running private cluster on ``port``, listening on loopback and ``addresses``."""

    def __init__(
        self, port: int, *, addresses: list[str], trust: list[str], max_connections: int = 50
    ) -> None:
        self.port = port
        self.bin = bin_dir()
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            raise CannotMake("there is no `postgres` user to run initdb as") from None
        self.directory = Path(tempfile.mkdtemp(prefix=f"mcfleet-pg-{port}-"))
        self.data = self.directory / "data"
        self.log = self.directory / "server.log"
        self.started = False
        try:
            os.chown(self.directory, owner.pw_uid, owner.pw_gid)
            self._as_postgres(
                "initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust",
                "--no-sync", "--encoding=UTF8", "--locale=C",
            )  # fmt: skip
            with (self.data / "pg_hba.conf").open("a") as hba:
                for network in trust:
                    hba.write(f"host all all {network} trust\n")
            listen = ",".join(["127.0.0.1", *addresses])
            settings = (
                f"-p {port} -c listen_addresses='{listen}' "
                f"-c unix_socket_directories='{self.directory}' "
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
                f"-c shared_buffers=16MB -c max_connections={max_connections}"
            )
            self._as_postgres(
                "pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w",
                "-t", str(int(patience(60))), "-o", settings, "start",
            )  # fmt: skip
            self.started = True
        except BaseException:
            self.close()
            raise

    def _as_postgres(self, program: str, *args: str) -> None:
        argv = ["runuser", "-u", "postgres", "--", str(self.bin / program), *args]
        done = subprocess.run(
            argv, capture_output=True, text=True, check=False, timeout=patience(120)
        )
        if done.returncode != 0:
            log = self.log.read_text(errors="replace") if self.log.exists() else ""
            raise RuntimeError(
                f"{program} failed ({done.returncode}): {done.stdout}{done.stderr}{log}"
            )

    def url(self, host: str, name: str) -> str:
        return f"postgres://postgres@{host}:{self.port}/{name}"

    def create_database(self, name: str) -> None:
        import psycopg

        with psycopg.connect(self.url("127.0.0.1", "postgres"), autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')

    def close(self) -> None:
        """Stop the server at once (its data is thrown away) and delete its directory."""
        try:
            if self.started:
                self.started = False
                self._as_postgres("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.directory)
