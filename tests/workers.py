"""Fixtures for tests that run real ``manage.py dbtasks_worker`` processes.

Each worker is a subprocess of this test run pointed at the current test
database (SQLite file or Postgres) through DATABASE_URL, with this run's
settings module (tests/settings.py: 200 ms heartbeat, 2 s timeout).
TEST_TASK_OPTIONS overrides OPTIONS keys for one process. Every process is
killed in teardown and its output printed, so a failing test shows what the
workers said. The waits (``wait_until``) are tests/live.py's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import quote

import pytest
from django.db import connection

from dbtasks.models import DBWorker
from tests.live import STARTUP_TIMEOUT
from tests.live import Service
from tests.live import manage
from tests.live import wait_until

WORKER = [sys.executable, "manage.py", "dbtasks_worker"]


def database_url() -> str:
    """The URL of the database this test run uses (the test database, not the dev one)."""
    settings = connection.settings_dict
    if connection.vendor == "sqlite":
        # An absolute path: sqlite:////tmp/... (four slashes).
        return f"sqlite:///{settings['NAME']}"
    if connection.vendor == "postgresql":
        user = quote(settings["USER"] or "", safe="")
        password = quote(settings["PASSWORD"] or "", safe="")
        credentials = f"{user}:{password}@" if password else f"{user}@" if user else ""
        host = settings["HOST"] or ""
        if ":" in host:  # an IPv6 address
            host = f"[{host}]"
        port = f":{settings['PORT']}" if settings["PORT"] else ""
        return f"postgres://{credentials}{host}{port}/{quote(settings['NAME'], safe='')}"
    pytest.skip(f"no worker process tests for {connection.vendor}")


def settings_module() -> str:
    """This run's settings module (settings.SETTINGS_MODULE is None under overrides)."""
    return os.environ.get("DJANGO_SETTINGS_MODULE") or "tests.settings"


class WorkerProcess(Service):
    """One ``manage.py dbtasks_worker`` subprocess, its output going to a file."""

    def __init__(
        self, args: list[str], *, env: dict[str, str], log: Path, prefix: Sequence[str] = ()
    ) -> None:
        """``prefix``: what runs the command (``ip netns exec ...``: the pid stays the same)."""
        name = f"worker {' '.join(args)}".strip()
        super().__init__(name, [*prefix, *WORKER, *args], env, log)
        self.args = args
        self.start()

    def wait_registered(self, timeout: float = STARTUP_TIMEOUT) -> DBWorker:
        """Wait until the worker has registered (its signal handlers are in place by then)."""

        def registered() -> DBWorker | None:
            if not self.running:
                pytest.fail(
                    f"Worker {self.args} exited with {self.returncode} before "
                    f"registering. Output:\n{self.output()}"
                )
            return DBWorker.objects.filter(pid=self.pid).first()

        return wait_until(registered, timeout=timeout, what=f"worker {self.pid} to register")


@pytest.fixture
def start_worker(transactional_db, tmp_path):
    """Start ``manage.py dbtasks_worker *args``; options= overrides OPTIONS keys."""
    started: list[WorkerProcess] = []
    url = database_url()
    sessions_before = other_sessions() if connection.vendor == "postgresql" else set()

    def start(
        *args: str,
        options: dict[str, object] | None = None,
        log_level: str = "INFO",
        env: dict[str, str] | None = None,
    ) -> WorkerProcess:
        """``env``: more environment variables (say, LD_PRELOAD of libfaketime)."""
        environment = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": settings_module(),
            "DATABASE_URL": url,
            "TEST_TASK_OPTIONS": json.dumps(options or {}),
            "LOG_LEVEL": log_level,
            "PYTHONUNBUFFERED": "1",
            **(env or {}),
        }
        log = tmp_path / f"worker-{len(started) + 1}.log"
        started.append(WorkerProcess(list(args), env=environment, log=log))
        return started[-1]

    yield start

    for process in started:
        process.kill()
    for number, process in enumerate(started, 1):
        print(f"--- worker {number} {process.args} (exit {process.returncode}) ---")  # noqa: T201
        print(process.output()[-20_000:])  # noqa: T201
    if connection.vendor == "postgresql":
        # Killed workers' sessions linger a moment; the database is flushed
        # (and at the end dropped) next.
        wait_until(
            lambda: other_sessions() <= sessions_before,
            timeout=10,
            what="the killed workers' database sessions to end",
        )


def other_sessions() -> set[int]:
    """The pids of the other sessions on the (Postgres) test database."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return {pid for (pid,) in cursor.fetchall()}


def run_manage(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run ``manage.py *args`` against the test database; return the finished process."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": settings_module(),
        "DATABASE_URL": database_url(),
    }
    return manage(*args, env=env, timeout=timeout)
