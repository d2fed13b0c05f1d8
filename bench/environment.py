"""The machine the arms run on: environments, databases, Redis, versions, load.

Only the orchestrator (``python -m bench``) uses this module. It builds
``bench/.venv-others`` (django-tasks-db and Celery, never in uv.lock), finds
Postgres and Redis on loopback (an arm whose store is missing is skipped with
a message), creates and drops the bench's own databases, and records what
the results depend on: CPU, memory, load, versions.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from typing import Self
from urllib.parse import urlsplit
from urllib.parse import urlunsplit

import django
import psycopg

from bench.harness import BENCH_DIR
from bench.harness import ROOT

OTHERS_VENV = BENCH_DIR / ".venv-others"
OTHERS_REQUIREMENTS = BENCH_DIR / "requirements-others.txt"
DEFAULT_POSTGRES_URL = "postgres://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/15"
DEFAULT_REDIS_RESULTS_URL = "redis://127.0.0.1:6379/14"


def find_uv() -> str | None:
    """uv from BENCH_UV, PATH, or the private copy ``make`` installs in .tools/."""
    for candidate in (os.environ.get("BENCH_UV"), shutil.which("uv"), ROOT / ".tools/bin/uv"):
        if not candidate or not Path(candidate).exists():
            continue
        # A shim (pyenv's, say) may exist and still not run: ask it.
        works = (
            subprocess.run(
                [str(candidate), "--version"], capture_output=True, check=False
            ).returncode
            == 0
        )
        if works:
            return str(candidate)
    return None


def others_python() -> tuple[str | None, str]:
    """The interpreter of bench/.venv-others, built on first use; or None and why.

    It holds the project's locked runtime requirements (``uv export``) plus
    bench/requirements-others.txt. A stamp of both files' hashes tells when
    to rebuild it.
    """
    python = OTHERS_VENV / "bin" / "python"
    digest = hashlib.sha256(
        (ROOT / "uv.lock").read_bytes() + OTHERS_REQUIREMENTS.read_bytes()
    ).hexdigest()
    stamp = OTHERS_VENV / ".bench-stamp"
    if python.exists() and stamp.exists() and stamp.read_text().strip() == digest:
        return str(python), "up to date"
    uv = find_uv()
    if uv is None:
        return None, "uv not found (set BENCH_UV, or run `make install` first)"
    print(f"Building {OTHERS_VENV.relative_to(ROOT)} (django-tasks-db, Celery)...", flush=True)
    with tempfile.TemporaryDirectory() as scratch:
        exported = Path(scratch) / "requirements.txt"
        steps = [
            [
                uv,
                "venv",
                "--quiet",
                "--allow-existing",
                "--python",
                sys.executable,
                str(OTHERS_VENV),
            ],
            [
                uv,
                "export",
                "--quiet",
                "--locked",
                "--no-dev",
                "--no-hashes",
                "--no-emit-project",
                "--format",
                "requirements-txt",
                "-o",
                str(exported),
            ],
            [
                uv,
                "pip",
                "install",
                "--quiet",
                "--python",
                str(python),
                "-r",
                str(exported),
                "-r",
                str(OTHERS_REQUIREMENTS),
            ],
        ]
        for step in steps:
            done = subprocess.run(step, cwd=ROOT, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                return None, f"`{' '.join(step[:3])}` failed: {done.stderr.strip()[-500:]}"
    stamp.write_text(digest + "\n")
    return str(python), "built"


# --- Postgres -----------------------------------------------------------------


def postgres_url() -> str:
    """BENCH_POSTGRES_URL (set but empty: no Postgres), else TEST_POSTGRES_URL, else the default."""
    if "BENCH_POSTGRES_URL" in os.environ:
        return os.environ["BENCH_POSTGRES_URL"]
    return os.environ.get("TEST_POSTGRES_URL") or DEFAULT_POSTGRES_URL


def show(connection: psycopg.Connection[Any], setting: str) -> str:
    """The value of a server setting (``SHOW``)."""
    row = connection.execute(f"SHOW {setting}").fetchone()
    if row is None:
        raise psycopg.ProgrammingError(f"SHOW {setting} returned no row")
    return str(row[0])


def postgres_status(url: str) -> tuple[str | None, str]:
    """The server's version, or None and why it cannot be used."""
    if not url:
        return None, "BENCH_POSTGRES_URL is empty"
    try:
        with psycopg.connect(url, connect_timeout=3) as connection:
            version = show(connection, "server_version")
            autovacuum = show(connection, "autovacuum")
            return f"{version}, autovacuum={autovacuum}", "reachable"
    except psycopg.Error as error:
        return None, str(error).strip().splitlines()[0] if str(error).strip() else "unreachable"


def with_database(url: str, name: str) -> str:
    """``url`` pointing at database ``name`` instead."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


class PostgresDatabases:
    """Creates the bench's databases on the server, and drops them at the end."""

    def __init__(self, maintenance_url: str) -> None:
        self.maintenance_url = maintenance_url
        self.created: list[str] = []

    def create(self, name: str) -> str:
        """Create (or re-create) database ``name``; return its URL."""
        with psycopg.connect(self.maintenance_url, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            connection.execute(f'CREATE DATABASE "{name}"')
        if name not in self.created:
            self.created.append(name)
        return with_database(self.maintenance_url, name)

    def drop_all(self) -> None:
        with psycopg.connect(self.maintenance_url, autocommit=True) as connection:
            for name in self.created:
                connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self.created.clear()


# --- Redis --------------------------------------------------------------------


def redis_command(url: str, *args: str, timeout: float = 3.0) -> str:
    """Send one command to Redis over a bare socket (the project has no client)."""
    parts = urlsplit(url)
    database = (parts.path or "/0").lstrip("/") or "0"
    with socket.create_connection(
        (parts.hostname or "127.0.0.1", parts.port or 6379), timeout=timeout
    ) as sock:
        for command in (("SELECT", database), args):
            sock.sendall(
                f"*{len(command)}\r\n".encode()
                + b"".join(f"${len(a.encode())}\r\n{a}\r\n".encode() for a in command)
            )
            reply = read_reply(sock)
    return reply


def read_reply(sock: socket.socket) -> str:
    """Read one simple, integer, error or bulk-string reply."""
    buffer = b""
    while b"\r\n" not in buffer:
        chunk = sock.recv(65536)
        if not chunk:
            raise OSError("Redis closed the connection")
        buffer += chunk
    header, rest = buffer.split(b"\r\n", 1)
    kind, value = header[:1], header[1:].decode()
    if kind == b"-":
        raise OSError(value)
    if kind != b"$":
        return value
    length = int(value)
    if length < 0:
        return ""
    while len(rest) < length + 2:
        chunk = sock.recv(65536)
        if not chunk:
            raise OSError("Redis closed the connection")
        rest += chunk
    return rest[:length].decode(errors="replace")


def redis_status(url: str) -> tuple[str | None, str]:
    """Redis's version, or None and why it cannot be used."""
    if not url:
        return None, "BENCH_REDIS_URL is empty"
    try:
        if redis_command(url, "PING") != "PONG":
            return None, "no PONG"
        info = redis_command(url, "INFO", "server")
    except OSError as error:
        return None, str(error) or "unreachable"
    for line in info.splitlines():
        if line.startswith("redis_version:"):
            return line.split(":", 1)[1].strip(), "reachable"
    return "unknown", "reachable"


# --- The machine --------------------------------------------------------------


def machine() -> dict[str, Any]:
    cpu_model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    mem_total_kib = 0
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_total_kib = int(line.split()[1])
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_model": cpu_model,
        "ram_gib": round(mem_total_kib / 1024 / 1024, 1),
        "kernel": platform.release(),
        "os": platform.platform(),
        "hostname": socket.gethostname(),
    }


def versions(others: str | None, postgres: str | None, redis: str | None) -> dict[str, str]:
    """Versions of everything a figure depends on."""
    found = {
        "python": platform.python_version(),
        "django": django.get_version(),
        "sqlite": sqlite3.sqlite_version,
        "psycopg": psycopg.__version__,
        "postgres": postgres or "absent",
        "redis_server": redis or "absent",
    }
    from importlib import metadata

    with contextlib.suppress(metadata.PackageNotFoundError):
        found["gunicorn"] = metadata.version("gunicorn")
    if others:
        script = (
            "import importlib.metadata as m, json; print(json.dumps({p: m.version(p) for p in "
            "['django-tasks-db', 'celery', 'kombu', 'redis', 'django']}))"
        )
        done = subprocess.run(
            [others, "-c", script], capture_output=True, text=True, check=False, cwd=ROOT
        )
        if done.returncode == 0:
            other = json.loads(done.stdout)
            found |= {
                "django_tasks_db": other["django-tasks-db"],
                "celery": other["celery"],
                "kombu": other["kombu"],
                "redis_py": other["redis"],
                "django_in_venv_others": other["django"],
            }
    wrk = shutil.which("wrk")
    if wrk:
        done = subprocess.run([wrk, "-v"], capture_output=True, text=True, check=False)
        found["wrk"] = (done.stdout + done.stderr).strip().splitlines()[0]
    git = subprocess.run(
        ["git", "describe", "--always", "--dirty"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    found["project_commit"] = git.stdout.strip() or "unknown"
    return found


class LoadMonitor:
    """Samples the load average and CPU use every few seconds while the bench runs."""

    def __init__(self, interval: float = 5.0) -> None:
        self.interval = interval
        self.samples: list[dict[str, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="load-monitor", daemon=True)

    @staticmethod
    def _cpu_times() -> tuple[int, int]:
        fields = [
            int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
        ]
        idle = fields[3] + fields[4]  # idle + iowait
        return sum(fields), idle

    def _run(self) -> None:
        total, idle = self._cpu_times()
        while not self._stop.wait(self.interval):
            new_total, new_idle = self._cpu_times()
            busy = 1 - (new_idle - idle) / max(new_total - total, 1)
            total, idle = new_total, new_idle
            self.samples.append(
                {"t": time.time(), "load1": os.getloadavg()[0], "cpu_busy": round(busy, 3)}
            )

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=self.interval + 1)

    def summary(self) -> dict[str, Any]:
        loads = [sample["load1"] for sample in self.samples] or [os.getloadavg()[0]]
        busy = [sample["cpu_busy"] for sample in self.samples] or [0.0]
        return {
            "load1_min": round(min(loads), 2),
            "load1_median": round(sorted(loads)[len(loads) // 2], 2),
            "load1_max": round(max(loads), 2),
            "cpu_busy_median": round(sorted(busy)[len(busy) // 2], 3),
        }


@contextlib.contextmanager
def scratch_directory(keep: bool) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="bench-"))
    try:
        yield path
    finally:
        if not keep:
            shutil.rmtree(path, ignore_errors=True)
