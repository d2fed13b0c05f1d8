"""A load generator for the web app: signed-in users sending and polling, measured.

Each client is a thread with its own ``httpx.Client`` (its own cookies). It
signs in through the login form (GET the page for the CSRF token, POST the
credentials), then, until the time is up and without pausing between
requests (a closed loop: this measures capacity, not a realistic pace):

- 1 request in 10 sends a notification the way htmx does (POST ``/`` with
  ``HX-Request`` and the ``X-CSRFToken`` header from the page);
- 1 in 20 loads the whole page (``GET /``);
- the rest poll the status endpoint of the client's own notifications, as the
  rows do: the URL each row carries (``?status=...&attempts=...``), which
  answers 204 while nothing changed and the new row when something did.

Every answer is checked: 200 for a send or a page, 200 or 204 for a poll;
anything else, or an exception (timeout, reset), counts as an error. The
figures are requests per second and latency percentiles, per kind and overall.

As a command, it starts everything itself, on loopback: a stand-in ntfy,
gunicorn as the Procfile runs it, one worker (2 threads) draining what the
clients send, on a fresh SQLite file (or ``--database-url``, an empty
database you made for it), with the test settings::

    python -m tests.load --seconds 15 --clients 20

``tests/messagecenter/process/test_web_load.py`` runs a short version in ``make test``.
"""

from __future__ import annotations

import argparse
import html
import json
import math
import os
import platform
import random
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx

# What a client does, in shares of its requests (the rest are polls).
SEND_SHARE = 0.10
PAGE_SHARE = 0.05
EXPECTED = {"send": {200}, "page": {200}, "poll": {200, 204}}

TOKEN_RE = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
# The token the page gives its script for the live channel (messagecenter/live_tokens.py).
LIVE_TOKEN_RE = re.compile(r'data-live-token="([^"]+)"')
# A row as the templates render it: its id, status and (while unfinished) poll URL.
ROW_RE = re.compile(
    r'<li class="notification" id="notification-(\d+)" data-status="([A-Z]+)"'
    r'\s+data-progress="([^"]*)"( data-live)?'
)


def live_token_of(page: str) -> str:
    match = LIVE_TOKEN_RE.search(page)
    return html.unescape(match.group(1)) if match else ""


@dataclass(frozen=True, slots=True)
class Sample:
    kind: str
    status: int  # 0 when the request raised
    seconds: float
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.error and self.status in EXPECTED[self.kind]


@dataclass
class LoadReport:
    seconds: float
    clients: int
    samples: list[Sample] = field(default_factory=list)
    sent: list[int] = field(default_factory=list)  # ids of the notifications the clients sent

    @property
    def errors(self) -> list[Sample]:
        return [sample for sample in self.samples if not sample.ok]

    @property
    def server_errors(self) -> list[Sample]:
        return [sample for sample in self.samples if sample.status >= 500]

    def figures(self) -> dict[str, Any]:
        """Requests/s and latency percentiles (ms), overall and per kind."""
        kinds = {"all": self.samples} | {
            kind: [sample for sample in self.samples if sample.kind == kind] for kind in EXPECTED
        }
        return {
            "seconds": round(self.seconds, 1),
            "clients": self.clients,
            "errors": len(self.errors),
            "server_errors": len(self.server_errors),
            "sent": len(self.sent),
            **{kind: summarize(samples, self.seconds) for kind, samples in kinds.items()},
        }

    def text(self) -> str:
        figures = self.figures()
        summary = (
            f"{figures['clients']} clients for {figures['seconds']} s: "
            f"{figures['errors']} errors ({figures['server_errors']} 5xx), "
            f"{figures['sent']} notifications sent"
        )
        header = (
            f"{'':6} {'requests':>9} {'req/s':>7} {'p50 ms':>7} {'p90 ms':>7} "
            f"{'p99 ms':>7} {'max ms':>7}"
        )
        lines = [summary, header]
        for kind in ("all", *EXPECTED):
            row = figures[kind]
            lines.append(
                f"{kind:6} {row['requests']:>9} {row['per_second']:>7} {row['p50_ms']:>7} "
                f"{row['p90_ms']:>7} {row['p99_ms']:>7} {row['max_ms']:>7}"
            )
        for sample in self.errors[:5]:
            lines.append(f"error: {sample.kind} -> {sample.status} {sample.error}".rstrip())
        return "\n".join(lines)


def percentile(sorted_values: Sequence[float], share: float) -> float:
    """The nearest-rank percentile of already sorted values."""
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(share * len(sorted_values)))
    return sorted_values[rank - 1]


def summarize(samples: Sequence[Sample], seconds: float) -> dict[str, Any]:
    latencies = sorted(sample.seconds * 1000 for sample in samples)
    return {
        "requests": len(samples),
        "per_second": round(len(samples) / seconds, 1) if seconds else 0.0,
        "p50_ms": round(percentile(latencies, 0.50), 1),
        "p90_ms": round(percentile(latencies, 0.90), 1),
        "p99_ms": round(percentile(latencies, 0.99), 1),
        "max_ms": round(latencies[-1], 1) if latencies else 0.0,
    }


class SignInFailed(RuntimeError):
    pass


class LoadClient:
    """One signed-in user: sends notifications and polls their rows."""

    def __init__(self, base_url: str, username: str, password: str, *, seed: int) -> None:
        self.http = httpx.Client(base_url=base_url, timeout=20, follow_redirects=False)
        self.username = username
        self.password = password
        self.random = random.Random(seed)
        self.token = ""
        self.live_token = ""
        self.live: dict[int, str] = {}  # notification id -> its row's poll URL
        self.settled: list[str] = []  # poll URLs of finished rows (they answer 204)
        self.sent: list[int] = []
        self.samples: list[Sample] = []

    def sign_in(self) -> None:
        page = self.http.get("/accounts/login/")
        token = TOKEN_RE.search(page.text)
        if page.status_code != 200 or token is None:
            raise SignInFailed(f"{self.username}: login page answered {page.status_code}")
        response = self.http.post(
            "/accounts/login/",
            data={
                "username": self.username,
                "password": self.password,
                "csrfmiddlewaretoken": token.group(1),
                "next": "/",
            },
        )
        if response.status_code != 302 or response.headers.get("location") != "/":
            raise SignInFailed(f"{self.username}: sign-in answered {response.status_code}")
        page = self.http.get("/")  # the token the page hands to htmx
        token = TOKEN_RE.search(page.text)
        if page.status_code != 200 or token is None:
            raise SignInFailed(f"{self.username}: the page answered {page.status_code}")
        self.token = token.group(1)
        self.live_token = live_token_of(page.text)

    def run_until(self, deadline: float | None, requests: int | None = None) -> None:
        """Send, load and poll until ``deadline`` (monotonic) or ``requests`` made."""
        made = 0
        while (deadline is None or time.monotonic() < deadline) and (
            requests is None or made < requests
        ):
            made += 1
            draw = self.random.random()
            if draw < SEND_SHARE or not (self.live or self.settled):
                self.send()  # and always first: a client has nothing to poll before
            elif draw < SEND_SHARE + PAGE_SHARE:
                self.page()
            else:
                self.poll()

    def close(self) -> None:
        self.http.close()

    # --- The three kinds of request ----------------------------------------------------

    def page(self) -> None:
        response = self.request("page", "GET", "/")
        if response is not None and response.status_code == 200:
            if token := TOKEN_RE.search(response.text):
                self.token = token.group(1)
            self.live_token = live_token_of(response.text) or self.live_token
            self.follow(response.text)  # htmx polls every unfinished row on the page

    def send(self) -> None:
        number = len(self.sent) + 1
        response = self.request(
            "send",
            "POST",
            "/",
            data={"message": f"Load test {self.username} #{number}", "priority": "3"},
            headers={"HX-Request": "true", "X-CSRFToken": self.token},
        )
        if response is not None and response.status_code == 200:
            self.follow(response.text)
            if match := ROW_RE.search(response.text):
                self.sent.append(int(match.group(1)))

    def poll(self) -> None:
        if self.live:
            pk, url = next(iter(self.live.items()))
            # Round robin: the row goes to the back of the queue.
            del self.live[pk]
            self.live[pk] = url
        else:
            url = self.random.choice(self.settled)
        headers = {"HX-Request": "true", "X-Live-Token": self.live_token}
        response = self.request("poll", "GET", url, headers=headers)
        if response is not None and response.status_code == 200:
            self.follow(response.text)

    def follow(self, text: str) -> None:
        """Track the rows in an answer: still polling, or finished."""
        for pk, _status, progress, live in ROW_RE.findall(text):
            url = "/notifications/live/?" + urlencode({"seen": html.unescape(progress)})
            if live:
                self.live[int(pk)] = url
            else:
                self.live.pop(int(pk), None)
                # A finished row polled with its final state: the cheap 204 path.
                self.settled.append(url)

    def request(self, kind: str, method: str, url: str, **kwargs: Any) -> httpx.Response | None:
        started = time.perf_counter()
        try:
            response = self.http.request(method, url, **kwargs)
        except httpx.HTTPError as error:
            self.samples.append(Sample(kind, 0, time.perf_counter() - started, repr(error)))
            return None
        sample = Sample(kind, response.status_code, time.perf_counter() - started)
        if not sample.ok:
            sample = Sample(kind, response.status_code, sample.seconds, response.text[:200])
        self.samples.append(sample)
        return response


def run_load(
    base_url: str,
    credentials: Sequence[tuple[str, str]],
    *,
    seconds: float | None = None,
    requests: int | None = None,
    seed: int = 1,
) -> LoadReport:
    """Sign every client in, then let them all loose for ``seconds``, or until each has
    made ``requests`` (what a test asks for: the same mix of requests however fast the
    machine is); return what happened."""
    if (seconds is None) == (requests is None):
        raise ValueError("run_load(): give seconds or requests")
    clients = [
        LoadClient(base_url, username, password, seed=seed + number)
        for number, (username, password) in enumerate(credentials)
    ]
    try:
        for client in clients:
            client.sign_in()
        started = time.monotonic()
        deadline = None if seconds is None else started + seconds
        threads = [
            threading.Thread(target=client.run_until, args=(deadline, requests), name=f"load-{n}")
            for n, client in enumerate(clients)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.monotonic() - started
    finally:
        for client in clients:
            client.close()
    report = LoadReport(seconds=elapsed, clients=len(clients))
    for client in clients:
        report.samples.extend(client.samples)
        report.sent.extend(client.sent)
    return report


# --- The command: everything on loopback --------------------------------------------------


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass  # not Linux: the platform's name will do
    return f"{cpu}, {len(os.sched_getaffinity(0))} CPUs, Python {platform.python_version()}"


def manage(env: dict[str, str], *args: str) -> None:
    from tests.live import BASE_DIR

    subprocess.run(
        [sys.executable, "manage.py", *args], cwd=BASE_DIR, env=env, check=True, timeout=300
    )


def main(argv: Sequence[str] | None = None) -> int:
    from tests.live import child_env
    from tests.live import start_web
    from tests.live import start_worker
    from tests.ntfy_server import NtfyStandIn

    parser = argparse.ArgumentParser(
        prog="python -m tests.load", description=(__doc__ or "").split("\n")[0]
    )
    parser.add_argument("--seconds", type=float, default=15.0, help="default: %(default)s")
    parser.add_argument("--clients", type=int, default=20, help="default: %(default)s")
    parser.add_argument(
        "--web-workers",
        type=int,
        default=None,
        help="gunicorn workers (WEB_CONCURRENCY); default: one per CPU",
    )
    parser.add_argument(
        "--database-url",
        help="an empty database to use (default: a new SQLite file in a temporary directory)",
    )
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)

    workers = args.web_workers or len(os.sched_getaffinity(0))
    with tempfile.TemporaryDirectory(prefix="messagecenter-load-") as tmp, NtfyStandIn() as ntfy:
        directory = Path(tmp)
        url = args.database_url or f"sqlite:///{directory / 'load.sqlite3'}"
        env = child_env(url, NTFY_URL=ntfy.topic_url, LOG_LEVEL="WARNING")
        manage(env, "migrate", "--verbosity", "0")
        password = "load-test-password-0123"  # throwaway users in a throwaway database
        usernames = [f"load-{n}" for n in range(args.clients)]
        manage(
            env,
            "shell",
            "--no-imports",
            "-c",
            "from django.contrib.auth import get_user_model\n"
            f"for name in {usernames!r}:\n"
            f"    get_user_model().objects.create_user(name, password={password!r})",
        )
        worker = start_worker(env, directory / "worker.log", "--threads", "2")
        web, base_url = start_web(env, directory / "web.log", workers=workers)
        try:
            credentials = [(name, password) for name in usernames]
            report = run_load(base_url, credentials, seconds=args.seconds)
            drain_started = time.monotonic()
            while len(ntfy.requests) < len(report.sent) and time.monotonic() - drain_started < 120:
                time.sleep(0.1)
            drained = time.monotonic() - drain_started
        finally:
            web.stop()
            worker.stop()
    figures = report.figures() | {
        "machine": machine(),
        "web_workers": workers,
        "database": url.split(":", 1)[0],
        "delivered": len(ntfy.requests),
        "drain_seconds_after_load": round(drained, 1),
    }
    sys.stdout.write(
        f"{report.text()}\n"
        f"delivered {figures['delivered']} of {figures['sent']} "
        f"({figures['drain_seconds_after_load']} s after the load stopped); "
        f"gunicorn workers: {workers}; {figures['machine']}\n"
    )
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    ok = not report.errors and figures["delivered"] >= figures["sent"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
