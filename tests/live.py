"""Live processes for the load, outage and browser tests: the web app under gunicorn, workers.

Both run as the Procfile runs them (``gunicorn messagecenter.wsgi``,
``manage.py dbtasks_worker``), on loopback, with the environment given (the
test settings and the test database, for the tests). Output goes to a log
file, shown when something fails. Nothing here needs pytest, so the load
generator's command line (``python -m tests.load``) uses it too.
"""

from __future__ import annotations

import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path

import httpx

BASE_DIR = Path(__file__).resolve().parent.parent


class ServiceFailed(RuntimeError):
    """A service exited early or did not answer in time; the message holds its log."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Service:
    """A subprocess whose output goes to a log file."""

    name: str
    argv: list[str]
    env: dict[str, str]
    log: Path
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    def start(self) -> Service:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                self.argv, cwd=BASE_DIR, env=self.env, stdout=out, stderr=subprocess.STDOUT
            )
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int | None:
        """Signal the process and wait for it; kill it if it does not exit in time."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        return self.process.returncode

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def describe(self, tail: int = 10_000) -> str:
        return f"--- {self.name} ({self.log}) ---\n{self.output()[-tail:]}"


def web_command(port: int) -> list[str]:
    """The Procfile's `web` line, with this interpreter's gunicorn, bound to loopback."""
    line = next(
        line.split(":", 1)[1]
        for line in (BASE_DIR / "Procfile").read_text().splitlines()
        if line.startswith("web:")
    )
    program, *args = shlex.split(line)
    assert program == "gunicorn", line
    # Graceful stop within the tests' patience; a request stuck on a dead
    # database is abandoned after 20 s instead of gunicorn's 30.
    extra = ["--bind", f"127.0.0.1:{port}", "--graceful-timeout", "5", "--timeout", "20"]
    return [sys.executable, "-m", "gunicorn", *args, *extra]


def start_web(env: dict[str, str], log: Path, *, workers: int = 2) -> tuple[Service, str]:
    """Start gunicorn; return it and its base URL once it answers."""
    port = free_port()
    web = Service("web", web_command(port), {**env, "WEB_CONCURRENCY": str(workers)}, log)
    web.start()
    url = f"http://127.0.0.1:{port}"
    wait_for_http(f"{url}/accounts/login/", web)
    return web, url


def start_worker(env: dict[str, str], log: Path, *args: str) -> Service:
    argv = [sys.executable, "manage.py", "dbtasks_worker", *args]
    return Service(f"worker {' '.join(args)}".strip(), argv, env, log).start()


def wait_for_http(url: str, service: Service, timeout: float = 30.0) -> None:
    """Wait until ``url`` answers below 500; raise ServiceFailed with the log if not."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not service.running:
            raise ServiceFailed(
                f"{service.name} exited before {url} answered:\n{service.describe()}"
            )
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.TransportError:
            pass  # not listening yet
        time.sleep(0.1)
    raise ServiceFailed(f"{url} did not answer within {timeout:g} s:\n{service.describe()}")


def child_env(database_url: str, **extra: str) -> dict[str, str]:
    """The environment of an app process on ``database_url``, with the test settings."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "DATABASE_URL", "NTFY_", "TEST_TASK"))
    }
    return env | {
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": database_url,
        "PYTHONUNBUFFERED": "1",
        **extra,
    }
