"""Fixtures for tests that run real ``manage.py dbtasks_worker`` processes.

Each worker is a subprocess of this test run pointed at the current test
database (SQLite file or Postgres) through DATABASE_URL, with this run's
settings module (tests/settings.py: 200 ms heartbeat, 2 s timeout).
TEST_TASK_OPTIONS overrides OPTIONS keys for one process. Every process is
killed in teardown and its output printed, so a failing test shows what the
workers said.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import pytest
from django.db import connection

from dbtasks.models import DBWorker

BASE_DIR = Path(__file__).resolve().parents[1]


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


def wait_until(predicate: Callable[[], object], *, timeout: float, what: str) -> object:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"Timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


class WorkerProcess:
    """One ``manage.py dbtasks_worker`` subprocess, its output going to a file."""

    def __init__(self, args: list[str], *, env: dict[str, str], log: Path) -> None:
        self.args = args
        self.log = log
        with log.open("wb") as output:
            self.popen = subprocess.Popen(
                [sys.executable, "manage.py", "dbtasks_worker", *args],
                cwd=BASE_DIR,
                env=env,
                stdout=output,
                stderr=subprocess.STDOUT,
            )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def is_running(self) -> bool:
        return self.popen.poll() is None

    def send(self, signum: int) -> None:
        self.popen.send_signal(signum)

    def wait(self, timeout: float = 30) -> int:
        """Wait for the process to exit; return its exit code."""
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(
                f"Worker {self.args} did not exit within {timeout}s. Output:\n{self.output()}"
            )

    def wait_registered(self, timeout: float = 30) -> DBWorker:
        """Wait until the worker has registered (its signal handlers are in place by then)."""

        def registered() -> DBWorker | None:
            if not self.is_running():
                pytest.fail(
                    f"Worker {self.args} exited with {self.popen.returncode} before "
                    f"registering. Output:\n{self.output()}"
                )
            return DBWorker.objects.filter(pid=self.pid).first()

        return wait_until(registered, timeout=timeout, what=f"worker {self.pid} to register")

    def kill(self) -> None:
        if self.is_running():
            self.popen.kill()
        self.popen.wait(10)


@pytest.fixture
def start_worker(transactional_db, tmp_path):
    """Start ``manage.py dbtasks_worker *args``; options= overrides OPTIONS keys."""
    started: list[WorkerProcess] = []
    url = database_url()
    sessions_before = other_sessions() if connection.vendor == "postgresql" else set()

    def start(*args: str, options: dict | None = None, log_level: str = "INFO") -> WorkerProcess:
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": settings_module(),
            "DATABASE_URL": url,
            "TEST_TASK_OPTIONS": json.dumps(options or {}),
            "LOG_LEVEL": log_level,
            "PYTHONUNBUFFERED": "1",
        }
        log = tmp_path / f"worker-{len(started) + 1}.log"
        started.append(WorkerProcess(list(args), env=env, log=log))
        return started[-1]

    yield start

    for process in started:
        process.kill()
    for number, process in enumerate(started, 1):
        print(f"--- worker {number} {process.args} (exit {process.popen.returncode}) ---")  # noqa: T201
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
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
