"""`make run` (devtools/run.py) as a person uses it, offline.

Starts it with NTFY_URL=local (the stand-in ntfy server; nothing leaves the
machine), signs in with the password it printed, sends a notification through
the web process and sees the worker deliver it; then Ctrl-C must stop every
process it started and exit 0. If a child dies, the rest stop and it exits 1.
"""

from __future__ import annotations

import os
import re
import signal
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.live import STARTUP_TIMEOUT
from tests.live import Service
from tests.live import TimedOut
from tests.live import free_port
from tests.live import wait_until

READY_LINE = "Press Ctrl-C to stop"

pytestmark = pytest.mark.process


@dataclass
class Run:
    """A running `python -m devtools.run` and what it printed."""

    service: Service
    url: str
    state_dir: Path

    def output(self) -> str:
        return self.service.output()

    def wait_for_output(self, text: str, timeout: float = STARTUP_TIMEOUT) -> None:
        def printed() -> bool:
            if not self.service.running:
                pytest.fail(f"devtools.run exited with {self.service.returncode}:\n{self.output()}")
            return text in self.output()

        wait_until(printed, timeout=timeout, what=repr(text), details=self.output)

    def child_pids(self) -> dict[str, int]:
        """The pids of the children, from their "started (pid N)" lines."""
        found = re.findall(r"^(\w+)\s+\| started \(pid (\d+)\)", self.output(), re.MULTILINE)
        return {name: int(pid) for name, pid in found}

    def stand_in_url(self) -> str:
        match = re.search(r"(http://\S+)/_stand_in/requests", self.output())
        assert match, self.output()
        return match.group(1)


def group_alive(pid: int) -> bool:
    """Whether any process is left in the group (the child and its own children)."""
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def run(tmp_path: Path) -> Iterator[Run]:
    port = free_port()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "DATABASE_", "NTFY_", "TEST_", "STATIC_"))
        and key not in {"DEBUG", "SECRET_KEY", "PORT"}
    }
    env |= {
        "PORT": str(port),
        "NTFY_URL": "local",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "NO_COLOR": "1",
    }
    argv = [sys.executable, "-m", "devtools.run", "--state-dir", str(tmp_path)]
    # Its own group, like a terminal's foreground job.
    service = Service("devtools.run", argv, env, tmp_path / "run.log", new_session=True)
    started = Run(service.start(), f"http://127.0.0.1:{port}", tmp_path)
    try:
        started.wait_for_output(READY_LINE)
        yield started
    finally:
        if service.running:
            service.send(signal.SIGINT)
            try:
                service.wait(timeout=40)
            except TimedOut:
                os.killpg(service.pid, signal.SIGKILL)
                service.kill()
        for pid in started.child_pids().values():
            if group_alive(pid):
                os.killpg(pid, signal.SIGKILL)


def sign_in(client: httpx.Client, password: str) -> None:
    page = client.get("/accounts/login/")
    token = client.cookies["csrftoken"]
    assert page.status_code == 200
    response = client.post(
        "/accounts/login/",
        data={"username": "demo", "password": password, "csrfmiddlewaretoken": token},
    )
    assert response.status_code == 302, response.text
    assert response.headers["Location"] == "/"


def test_make_run_serves_delivers_and_stops_cleanly_on_ctrl_c(run: Run):
    password = (run.state_dir / ".demo-password").read_text().strip()
    output = run.output()
    assert f"Message Center is running at {run.url}/" in output
    assert f"Sign in as 'demo' with password {password!r}" in output
    children = run.child_pids()
    assert set(children) == {"ntfy", "web", "worker"}

    with httpx.Client(base_url=run.url, timeout=10) as client:
        sign_in(client, password)
        response = client.post(
            "/",
            data={
                "message": "Hello from make run",
                "priority": "3",
                "csrfmiddlewaretoken": client.cookies["csrftoken"],
            },
        )
        assert response.status_code == 302, response.text
    received = wait_until(
        lambda: httpx.get(f"{run.stand_in_url()}/_stand_in/requests").json(),
        timeout=30,
        what="the stand-in ntfy to receive the notification",
        interval=0.1,
    )
    assert [request["json"]["message"] for request in received] == ["Hello from make run"]

    run.service.send(signal.SIGINT)  # Ctrl-C

    assert run.service.wait(timeout=40) == 0, run.output()
    for name, pid in children.items():
        assert not group_alive(pid), f"{name} (pid {pid}) is still running"
    assert "stopping" in run.output()


def test_make_run_stops_everything_when_a_child_dies(run: Run):
    children = run.child_pids()

    os.killpg(children["worker"], signal.SIGKILL)

    assert run.service.wait(timeout=40) == 1, run.output()
    for name, pid in children.items():
        assert not group_alive(pid), f"{name} (pid {pid}) is still running"
    assert "worker | exited with status -9" in run.output()
