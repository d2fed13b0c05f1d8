"""The database goes away under load: workers back off and reconnect, the site says sorry.

Two outages, each while two workers (2 threads each) process a queue and a
signed-in browser keeps loading the page and polling a row from gunicorn
(DEBUG off, the test settings):

- every session of the test database is killed with ``pg_terminate_backend``,
  three times (a failover, a DBA, a pooler restart). test_reconnect.py shows
  one worker reconnecting; this adds the web app and the figures;
- the Postgres server itself restarts (``pg_ctlcluster <version> <cluster>
  stop``, 2 s, ``start``: about three seconds without a database). This stops
  every other session of that server too, so it only runs when
  DBTASKS_TEST_PG_RESTART=1 (CI sets it), as root, with the cluster on this
  machine (found by the test database's port in ``pg_lsclusters``).

Either way: no task is lost and none is left RUNNING; the workers stay up and
say in their logs that they are retrying; while the database is away the site
answers with templates/500.html, never a traceback; afterwards it serves pages
again by itself, with nothing restarted.

``max_attempts`` is 10 here: a task whose own query meets the outage fails
that attempt (an OperationalError) and is retried, so a task could lose one
attempt per outage; 10 leaves no doubt that anything but SUCCESSFUL is a bug.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass
from dataclasses import field
from datetime import UTC
from datetime import datetime

import httpx
import psycopg
import pytest
from django.conf import settings
from django.db import connection
from django.db import transaction
from django.db.models import Count
from django.tasks import TaskResultStatus
from django.test import Client

from dbtasks.models import DBTaskAttempt
from dbtasks.models import DBTaskResult
from messagecenter import live_tokens
from messagecenter.models import Notification
from tests import tasks
from tests.dbtasks.postgres.test_reconnect import terminate_worker_sessions
from tests.live import child_env
from tests.live import patience
from tests.live import start_web
from tests.live import wait_until
from tests.testapp.models import TaskRun
from tests.workers import database_url

pytestmark = [pytest.mark.process, pytest.mark.postgres, pytest.mark.slow]

# A heartbeat timeout longer than the outage: a worker that cannot record an
# outcome for longer than it exits (4) for others to recover its attempts,
# and these tests are about workers that ride an outage out.
OPTIONS = {"max_attempts": 10, "heartbeat_timeout": "10 seconds"}
DOWNTIME = 2.0  # seconds the server stays stopped in the restart test
ERROR_PAGE = 'data-error-page="500"'  # templates/500.html
RETRYING = "Database error; retrying in"  # dbtasks.worker's log line


@dataclass
class Browser:
    """A signed-in visitor loading the page and polling a row, every 50 ms, in a thread."""

    url: str
    cookies: dict[str, str]
    poll_path: str
    live_token: str  # what the page gives its script for the poll
    log: list[tuple[float, int, str]] = field(default_factory=list)  # (time, status, body)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        with httpx.Client(base_url=self.url, cookies=self.cookies, timeout=30) as client:
            while not self.stop.wait(0.05):
                for path, headers in (
                    ("/", {}),
                    (self.poll_path, {"HX-Request": "true", "X-Live-Token": self.live_token}),
                ):
                    try:
                        response = client.get(path, headers=headers)
                    except httpx.HTTPError as error:
                        self.log.append((time.monotonic(), 0, repr(error)))
                    else:
                        self.log.append((time.monotonic(), response.status_code, response.text))

    def since(self, moment: float) -> list[tuple[float, int, str]]:
        return [entry for entry in self.log if entry[0] >= moment]


@pytest.fixture
def browser(start_worker, tmp_path, django_user_model):
    """gunicorn on the test database, and a signed-in browser on it (stopped before the workers)."""
    user = django_user_model.objects.create_user("visitor", password="pw-visitor-0123")
    # Its delivery record is gone (as after a purge): the row shows Expired and
    # its poll answers 204, a query every time, whatever the workers do.
    notification = Notification.objects.create(owner=user, message="Still there?")
    client = Client()
    client.force_login(user)
    cookies = {settings.SESSION_COOKIE_NAME: client.cookies[settings.SESSION_COOKIE_NAME].value}
    server, url = start_web(child_env(database_url()), tmp_path / "web.log")
    poll_path = f"/notifications/live/?seen={notification.pk}."
    browser = Browser(url, cookies, poll_path, live_tokens.issue(user))
    thread = threading.Thread(target=browser.run, name="browser", daemon=True)
    thread.start()
    try:
        yield browser
    finally:
        browser.stop.set()
        thread.join(timeout=patience(40))
        server.stop()
        print(server.describe())  # noqa: T201 - shown when the test fails
        connection.close()  # it may have been cut too: the teardown needs a fresh one


def enqueue(count: int, seconds: float) -> list[str]:
    keys = [f"outage-{n}" for n in range(count)]
    with transaction.atomic():
        for key in keys:
            tasks.record_run.enqueue(key, seconds)
    return keys


def succeeded() -> int:
    return DBTaskResult.objects.filter(
        task_path="tests.tasks.record_run", status=TaskResultStatus.SUCCESSFUL
    ).count()


def assert_every_task_succeeded_once_or_was_retried(keys: list[str]) -> None:
    """None lost, none left running; a task ran twice only if an attempt of it failed."""
    rows = DBTaskResult.objects.filter(task_path="tests.tasks.record_run")
    assert rows.count() == len(keys)
    assert not rows.exclude(status=TaskResultStatus.SUCCESSFUL).exists()
    runs = dict(TaskRun.objects.values_list("key").annotate(runs=Count("id")))
    assert set(runs) == set(keys)
    retried = {
        attempt.result.args[0]
        for attempt in DBTaskAttempt.objects.filter(
            outcome=DBTaskAttempt.Outcome.FAILED
        ).select_related("result")
    }
    assert {key for key, count in runs.items() if count > 1} <= retried


def assert_the_site_said_sorry_then_recovered(browser: Browser) -> dict:
    """Only pages, 204s and the friendly 500 page, then pages again. Return figures."""
    tracebacks = [body[:300] for _, _, body in browser.log if "Traceback" in body]
    assert not tracebacks
    unexpected = [
        (status, body[:200])
        for _, status, body in browser.log
        if status not in {200, 204} and not (status == 500 and ERROR_PAGE in body)
    ]
    assert not unexpected
    # Recovered by itself: the latest answers are the page and the row again.
    wait_until(
        lambda: len(browser.log) > 6 and all(s in {200, 204} for _, s, _ in browser.log[-6:]),
        timeout=30,
        what="the site to serve pages again",
    )
    windows = error_windows(browser.log)
    return {
        "requests": len(browser.log),
        "error_pages": sum(1 for _, status, _ in browser.log if status == 500),
        "longest_error_window_s": round(max((end - start for start, end in windows), default=0), 2),
    }


def error_windows(log: list[tuple[float, int, str]]) -> list[tuple[float, float]]:
    """(first error, next success) for each run of error answers."""
    windows, start = [], None
    for moment, status, _ in log:
        if status in {200, 204}:
            if start is not None:
                windows.append((start, moment))
                start = None
        elif start is None:
            start = moment
    return windows


def worker_back_after(moment: float) -> float:
    """Seconds from ``moment`` (time.time()) to the first task that finished after it."""
    finished = (
        DBTaskResult.objects.filter(finished_at__gt=datetime.fromtimestamp(moment, tz=UTC))
        .order_by("finished_at")
        .values_list("finished_at", flat=True)
        .first()
    )
    assert finished is not None, "no task finished after the outage"
    return round(finished.timestamp() - moment, 2)


# --- Killed sessions ----------------------------------------------------------------


def test_killed_sessions_cost_no_task_and_the_site_recovers(start_worker, browser):
    keys = enqueue(300, 0.02)
    workers = [
        start_worker("--threads", "2", "--id", f"outage{n}", options=OPTIONS, log_level="WARNING")
        for n in range(2)
    ]
    for worker in workers:
        worker.wait_registered()

    outages = []  # (when, sessions killed)
    for done in (40, 120, 200):
        # The lambda is called before the loop goes on.
        wait_until(lambda: succeeded() >= done, timeout=60, what=f"{done} tasks")  # noqa: B023
        outages.append((time.time(), terminate_worker_sessions()))

    wait_until(lambda: succeeded() == len(keys), timeout=90, what="every task to succeed")
    assert all(worker.running for worker in workers)
    logs = "".join(worker.output() for worker in workers)
    assert RETRYING in logs or "cannot record the outcome yet" in logs
    assert_every_task_succeeded_once_or_was_retried(keys)
    site = assert_the_site_said_sorry_then_recovered(browser)
    failed = DBTaskAttempt.objects.filter(outcome=DBTaskAttempt.Outcome.FAILED).count()
    print(  # noqa: T201 - the figures docs/reliability.md quotes
        f"\nkilled sessions: {len(outages)} rounds ({sum(n for _, n in outages)} sessions); "
        f"{len(keys)} tasks all SUCCESSFUL, {failed} attempts failed and retried; first task "
        f"done {[worker_back_after(when) for when, _ in outages]} s after each; site: {site}"
    )


# --- A server restart ---------------------------------------------------------------------


def local_cluster() -> tuple[str, str]:
    """(version, name) of the cluster on this machine serving the test database's port."""
    if os.environ.get("DBTASKS_TEST_PG_RESTART") != "1":
        pytest.skip(
            "restarts the Postgres server, and with it every other session on this machine: "
            "set DBTASKS_TEST_PG_RESTART=1 to run it (CI does)"
        )
    if os.geteuid() != 0 or shutil.which("pg_ctlcluster") is None:
        pytest.skip("needs root and pg_ctlcluster (Debian's postgresql-common) to restart Postgres")
    host = connection.settings_dict["HOST"] or "localhost"
    if host not in {"localhost", "127.0.0.1", "::1"} and not host.startswith("/"):
        pytest.skip(f"the test database is on {host}, not on this machine")
    port = str(connection.settings_dict["PORT"] or 5432)
    clusters = subprocess.run(
        ["pg_lsclusters", "--no-header"], capture_output=True, text=True, check=True
    ).stdout
    for line in clusters.splitlines():
        version, name, cluster_port, status, *_ = line.split()
        if cluster_port == port and status == "online":
            return version, name
    pytest.skip(f"no online cluster on port {port} in pg_lsclusters:\n{clusters}")


class Prober:
    """Connects to the database every 20 ms, in a thread, to time how long it is unreachable."""

    def __init__(self) -> None:
        params = connection.settings_dict
        self.conninfo = {
            "host": params["HOST"] or None,
            "port": params["PORT"] or None,
            "user": params["USER"] or None,
            "password": params["PASSWORD"] or None,
            "dbname": params["NAME"],
            "connect_timeout": 2,
        }
        self.failures: list[float] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, name="prober", daemon=True)

    def run(self) -> None:
        while not self.stop.wait(0.02):
            try:
                with psycopg.connect(**self.conninfo) as probe:
                    probe.execute("SELECT 1")
            except psycopg.Error:
                self.failures.append(time.time())

    def down_for(self) -> float:
        """Seconds from the first failed connection to the last one."""
        return round(self.failures[-1] - self.failures[0], 2) if self.failures else 0.0


# It cuts every session on the server: make test runs it alone, after the other passes.
@pytest.mark.restarts_postgres
def test_a_server_restart_costs_no_task_and_the_site_recovers(start_worker, browser):
    version, name = local_cluster()
    keys = enqueue(600, 0.02)
    workers = [
        start_worker("--threads", "2", "--id", f"restart{n}", options=OPTIONS, log_level="WARNING")
        for n in range(2)
    ]
    for worker in workers:
        worker.wait_registered()
    wait_until(lambda: succeeded() >= 50, timeout=60, what="50 tasks")
    connection.close()  # this process's session goes with the server

    prober = Prober()
    prober.thread.start()
    down_at = time.time()
    # A restart with the server down for DOWNTIME seconds in between (a plain
    # `restart` is down for under half a second here): long enough for the
    # workers' back-off to grow and for the site to serve its error page a while.
    for action in ("stop", "start"):
        result = subprocess.run(
            ["pg_ctlcluster", version, name, action],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        if action == "stop":
            time.sleep(DOWNTIME)
    up_at = time.time()  # pg_ctlcluster start returns once the server accepts connections
    prober.stop.set()
    prober.thread.join(timeout=patience(10))
    assert prober.failures, "the server never went away: nothing was tested"

    wait_until(lambda: succeeded() == len(keys), timeout=120, what="every task to succeed")
    assert all(worker.running for worker in workers)
    logs = "".join(worker.output() for worker in workers)
    assert RETRYING in logs
    assert_every_task_succeeded_once_or_was_retried(keys)
    site = assert_the_site_said_sorry_then_recovered(browser)
    # While the server was down, the site had something to say: the error page.
    assert site["error_pages"] >= 1
    back_offs = sorted(set(re.findall(rf"{RETRYING} ([\d.]+)s", logs)), key=float)
    print(  # noqa: T201 - the figures docs/reliability.md quotes
        f"\nserver restart: pg_ctlcluster {version} {name} stop, {DOWNTIME:g}s, start took "
        f"{up_at - down_at:.1f}s, connections refused for {prober.down_for()}s; "
        f"{len(keys)} tasks all SUCCESSFUL; "
        f"first task done {worker_back_after(prober.failures[-1])} s after the server was back "
        f"(back-off steps logged: {back_offs}); site: {site}"
    )
