"""Figure 6: the status poll endpoint under gunicorn, against a hello view.

The web app runs as the Procfile runs it (``gunicorn messagecenter.wsgi
--access-logfile -``, sync workers; ``WEB_CONCURRENCY`` = the number of
CPUs), with ``bench.web_settings`` on a bench database (SQLite or Postgres,
as the dbtasks arms). A signed-in user owns one notification whose delivery
task is READY (no worker runs). Three URLs, each loaded for ``duration``
seconds over ``connections`` connections on loopback, with what the page's
script sends (the user's session cookie, ``HX-Request: true`` and the
page's live token), in a different order each round:

- hello: ``/bench/hello/``, a view with no database access, same middleware;
- poll 204: ``/notifications/live/?seen=<pk>.<progress>``, the page's live
  channel with one row, unchanged;
- poll changed: the row seen as RUNNING, so the view renders the row partial.

Load generator: wrk (``apt-get install wrk``) when present, else a Python
thread pool (slower: it then measures itself as much as the server).
"""

from __future__ import annotations

import http.client
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench.harness import DBTASKS
from bench.harness import Arm
from bench.harness import Metric
from bench.harness import rotated
from bench.orchestrator import ArmFailed
from bench.orchestrator import Bench
from bench.queues import child_env
from bench.workers import ManagedProcess
from bench.workers import wait_until

NAME = "poll_http"
TITLE = "6. Poll endpoint under gunicorn vs a hello view (requests/s)"
METRICS = (
    Metric("hello", "hello view", "/s"),
    Metric("poll_204", "poll, unchanged (204)", "/s"),
    Metric("poll_changed", "poll, changed (200 + row)", "/s"),
    Metric("poll_204_share", "204 ÷ hello", "%", digits=0, ratio=False),
    Metric("poll_changed_share", "changed ÷ hello", "%", digits=0, ratio=False),
)
SETTINGS = "bench.web_settings"
PATHS = ("hello", "poll_204", "poll_changed")


def params(quick: bool) -> dict[str, Any]:
    return {"duration": 3 if quick else 10, "connections": 16, "warm_up": 1 if quick else 2}


def run(bench: Bench) -> None:
    settings = params(bench.quick)
    figure = bench.figure_results(NAME)
    figure["params"] = settings
    arms = bench.arms_for((DBTASKS,))
    setups: dict[str, dict[str, Any]] = {}
    for arm in arms:
        try:
            url = bench.database(arm, "web", settings=SETTINGS)
            setups[arm.name] = bench.call(
                arm, NAME, "setup", {}, url=url, settings=SETTINGS, timeout=300
            )
            setups[arm.name]["url"] = url
        except ArmFailed as error:
            bench.error(NAME, arm, error)
    figure["setup"] = {name: {"pk": s["pk"], "status": s["status"]} for name, s in setups.items()}
    arms = [arm for arm in arms if arm.name in setups]
    for round_number in range(1, bench.rounds + 1):
        for arm in rotated(arms, round_number - 1):
            setup = setups[arm.name]
            bench.measure_once(
                NAME,
                arm,
                {**settings, **setup, "order": rotated(PATHS, round_number - 1)},
                round_number,
                url=setup["url"],
                settings=SETTINGS,
                timeout=600,
            )


# --- Inside the arm ---------------------------------------------------------------


def measure(arm: Arm, phase: str, params: dict[str, Any]) -> dict[str, Any]:
    if phase == "setup":
        return setup()
    return load(params)


def setup() -> dict[str, Any]:
    """A user, a notification with a READY delivery task, its session cookie and live token."""
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.db import transaction
    from django.test import Client

    from messagecenter import live_tokens
    from messagecenter.models import Notification
    from messagecenter.results import delivery_of
    from messagecenter.sending import send

    user = get_user_model().objects.create_user("bench", password="bench-password-0123")
    with transaction.atomic():
        notification = Notification.objects.create(owner=user, message="Benchmark")
        send(notification)
    client = Client()
    client.force_login(user)
    session = client.cookies[settings.SESSION_COOKIE_NAME].value
    return {
        "pk": notification.pk,
        "status": delivery_of(notification).fingerprint,
        "cookie": f"{settings.SESSION_COOKIE_NAME}={session}",
        "live_token": live_tokens.issue(user),
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def fetch(port: int, path: str, headers: dict[str, str]) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def load(params: dict[str, Any]) -> dict[str, Any]:
    pk, progress = params["pk"], params["status"]
    paths = {
        "hello": ("/bench/hello/", 200),
        "poll_204": (f"/notifications/live/?seen={pk}.{progress}", 204),
        "poll_changed": (f"/notifications/live/?seen={pk}.0:RUNNING:1", 200),
    }
    headers = {
        "Cookie": params["cookie"],
        "HX-Request": "true",
        "X-Live-Token": params["live_token"],
        "Host": "127.0.0.1",
    }
    port = free_port()
    env = child_env() | {"WEB_CONCURRENCY": str(len(os.sched_getaffinity(0)))}
    log = Path(tempfile.gettempdir()) / f"bench-gunicorn-{port}.log"
    server = ManagedProcess(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "messagecenter.wsgi",
            "--access-logfile",
            "-",
            "--bind",
            f"127.0.0.1:{port}",
        ],
        env=env,
        name="gunicorn",
        log=log,
    )
    try:

        def answers() -> bool:
            try:
                return fetch(port, paths["hello"][0], headers)[0] == 200
            except OSError:
                return False

        wait_until(answers, timeout=60, interval=0.2, watch=[server], what="gunicorn")
        for path, expected in paths.values():
            got, body = fetch(port, path, headers)
            if got != expected:
                raise RuntimeError(
                    f"GET {path} answered {got}, expected {expected}: {body[:300]!r}"
                )
        result: dict[str, Any] = {"load_generator": "wrk" if shutil.which("wrk") else "python"}
        for name in params["order"]:
            path = paths[name][0]
            generate(port, path, headers, params["warm_up"], params["connections"])
            measured = generate(port, path, headers, params["duration"], params["connections"])
            result[name] = measured["rps"]
            result[f"{name}_detail"] = measured
    finally:
        server.stop()
        log.unlink(missing_ok=True)
    result["poll_204_share"] = 100 * result["poll_204"] / result["hello"]
    result["poll_changed_share"] = 100 * result["poll_changed"] / result["hello"]
    return result


def generate(
    port: int, path: str, headers: dict[str, str], duration: float, connections: int
) -> dict[str, Any]:
    wrk = shutil.which("wrk")
    if wrk:
        return run_wrk(wrk, port, path, headers, duration, connections)
    return run_threads(port, path, headers, duration, connections)


def run_wrk(
    wrk: str, port: int, path: str, headers: dict[str, str], duration: float, connections: int
) -> dict[str, Any]:
    command = [wrk, "-t1", f"-c{connections}", f"-d{duration:g}s", "--latency"]
    for key, value in headers.items():
        if key != "Host":
            command += ["-H", f"{key}: {value}"]
    done = subprocess.run(
        [*command, f"http://127.0.0.1:{port}{path}"], capture_output=True, text=True, check=True
    )
    text = done.stdout

    def number(pattern: str) -> float | None:
        match = re.search(pattern, text)
        return float(match.group(1)) if match else None

    return {
        "rps": number(r"Requests/sec:\s+([\d.]+)"),
        "requests": number(r"(\d+) requests in"),
        "non_2xx_3xx": number(r"Non-2xx or 3xx responses:\s+(\d+)") or 0,
        "socket_errors": re.findall(r"Socket errors:.*", text),
        # The "Latency Distribution" lines: "     50%    5.21ms".
        "latency_p50": percentile_line(text, 50),
        "latency_p99": percentile_line(text, 99),
    }


def percentile_line(text: str, percent: int) -> str | None:
    match = re.search(rf"^\s+{percent}%\s+(\S+)\s*$", text, re.MULTILINE)
    return match.group(1) if match else None


def run_threads(
    port: int, path: str, headers: dict[str, str], duration: float, connections: int
) -> dict[str, Any]:
    deadline = time.monotonic() + duration
    counts = [0] * connections
    errors = [0] * connections

    def worker(index: int) -> None:
        while time.monotonic() < deadline:
            try:
                status, _ = fetch(port, path, headers)
            except OSError:
                errors[index] += 1
                continue
            if status < 400:
                counts[index] += 1
            else:
                errors[index] += 1

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(connections)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    return {"rps": sum(counts) / elapsed, "requests": sum(counts), "errors": sum(errors)}
