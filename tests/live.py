"""What every test that starts a process shares: waits, ports, commands, services.

- ``wait_until`` waits for an event, ``patience`` stretches a timeout: every
  timeout in the tests goes through them, scaled by TEST_TIMEOUT_FACTOR;
- ``free_port``, ``manage`` / ``python`` (a command run to the end);
- ``Service``: a long-running subprocess with its output in a log file, and
  the two the Procfile runs (``gunicorn messagecenter.wsgi``,
  ``manage.py dbtasks_worker``), on loopback, with the environment given.

Nothing here needs pytest, so the load generator's command line
(``python -m tests.load``) uses it too.
"""

from __future__ import annotations

import base64
import os
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent


class ServiceFailed(RuntimeError):
    """A service exited early or did not answer in time; the message holds its log."""


class TimedOut(AssertionError):
    """An awaited event did not happen in time (an AssertionError: the test fails)."""


def timeout_factor() -> float:
    """TEST_TIMEOUT_FACTOR (default 1): how much longer every wait may take.

    Tests wait for events, never for the clock; a timeout only says when to
    give up. On a slow or loaded machine, stretch them all with one number.
    """
    value = os.environ.get("TEST_TIMEOUT_FACTOR") or "1"
    try:
        factor = float(value)
    except ValueError:
        factor = 0.0
    if not factor > 0:
        raise ValueError(f"TEST_TIMEOUT_FACTOR must be a number above 0, got {value!r}.")
    return factor


# The longest a process may take to start and reach the point a test waits
# for, on a loaded two-core machine (a passing run takes a few seconds).
STARTUP_TIMEOUT = 120.0


def patience(seconds: float) -> float:
    """``seconds`` stretched by TEST_TIMEOUT_FACTOR."""
    return seconds * timeout_factor()


def wait_until[T](
    predicate: Callable[[], T | None],
    *,
    timeout: float,
    what: str,
    interval: float = 0.05,
    details: Callable[[], str] | None = None,
) -> T:
    """Poll ``predicate`` until it returns something truthy, and return that.

    Fails (TimedOut) after ``timeout`` seconds times TEST_TIMEOUT_FACTOR, with
    ``details()`` (a log, say) in the message.
    """
    limit = patience(timeout)
    deadline = time.monotonic() + limit
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            more = f":\n{details()}" if details else ""
            raise TimedOut(f"Timed out after {limit:g}s waiting for {what}{more}")
        time.sleep(interval)


def free_port() -> int:
    """A loopback TCP port nothing listens on (at the time of asking)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def manage(
    *args: str, env: dict[str, str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run ``python manage.py *args`` to the end; its output captured as text."""
    return python("manage.py", *args, env=env, timeout=timeout)


def python(
    *args: str, env: dict[str, str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run this interpreter with ``args`` in the project directory, to the end."""
    return subprocess.run(
        [sys.executable, *args],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=patience(timeout),
        check=False,
    )


@dataclass
class Service:
    """A subprocess whose output goes to a log file.

    ``new_session`` starts it in its own process group, as a terminal starts a
    foreground job (for commands that manage children of their own).
    """

    name: str
    argv: list[str]
    env: dict[str, str]
    log: Path
    new_session: bool = False
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    def start(self) -> Service:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                self.argv,
                cwd=BASE_DIR,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=self.new_session,
            )
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def returncode(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def send(self, sig: int) -> None:
        assert self.process is not None
        self.process.send_signal(sig)

    def wait(self, timeout: float = 60.0) -> int:
        """Wait for the process to exit by itself; return its exit code."""
        assert self.process is not None
        try:
            return self.process.wait(timeout=patience(timeout))
        except subprocess.TimeoutExpired:
            raise TimedOut(
                f"{self.name} did not exit within {patience(timeout):g} s:\n{self.describe()}"
            ) from None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int | None:
        """Signal the process and wait for it; kill it if it does not exit in time."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=patience(timeout))
            except subprocess.TimeoutExpired:
                self.kill()
        return self.process.returncode

    def kill(self) -> None:
        if self.process is not None:
            if self.process.poll() is None:
                self.process.kill()
            self.process.wait(timeout=patience(10))

    def size(self) -> int:
        """How much it has logged so far (for ``output(since=...)``)."""
        return self.log.stat().st_size if self.log.exists() else 0

    def output(self, since: int = 0) -> str:
        """The log, from byte ``since`` on."""
        if not self.log.exists():
            return ""
        with self.log.open("rb") as log:
            log.seek(since)
            return log.read().decode(errors="replace")

    def describe(self, tail: int = 10_000) -> str:
        return f"--- {self.name} ({self.log}) ---\n{self.output()[-tail:]}"


def web_command(port: int | None = None) -> list[str]:
    """The Procfile's `web` line, with this interpreter's gunicorn.

    With ``port``, bound to loopback there and with shorter timeouts; without,
    exactly as the Procfile has it.
    """
    line = next(
        line.split(":", 1)[1]
        for line in (BASE_DIR / "Procfile").read_text().splitlines()
        if line.startswith("web:")
    )
    program, *args = shlex.split(line)
    assert program == "gunicorn", line
    if port is None:
        return [sys.executable, "-m", "gunicorn", *args]
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


def wait_for_http(url: str, service: Service, timeout: float = STARTUP_TIMEOUT) -> None:
    """Wait until ``url`` answers below 500; raise ServiceFailed with the log if not.

    ``timeout`` is stretched by TEST_TIMEOUT_FACTOR.
    """
    import httpx  # not installed where only dbtasks is tested (make test-django52)

    timeout = patience(timeout)
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
        # As in production (the pytest process itself keeps it off: tests/settings.py).
        "LIVE_MEMO": "1",
        **extra,
    }


# The environment a deployment sets (README, Procfile, docker-compose.yml).
PRODUCTION_ENV = {
    "SECRET_KEY": secrets.token_urlsafe(50),
    # A Fernet key: 32 random bytes, url-safe base64.
    "CHANNEL_TOKEN_KEY": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
    "ALLOWED_HOSTS": "example.com",
    "NTFY_URL": "https://ntfy.example/topic",
    "DATABASE_URL": "sqlite:////tmp/messagecenter-check-deploy.sqlite3",
}


def production_env(**overrides: str) -> dict[str, str]:
    """The environment of a production process: messagecenter.settings, DEBUG off."""
    env = {
        key: value
        for key, value in os.environ.items()
        # Nothing from the test run or the developer's shell may leak in.
        if key not in {"DEBUG", "DJANGO_SETTINGS_MODULE", "STATIC_ROOT"}
        and not key.startswith(("SECURE_", "NTFY_", "TEST_"))
    }
    env["DJANGO_SETTINGS_MODULE"] = "messagecenter.settings"
    return env | PRODUCTION_ENV | overrides
