"""The browser tests' world: real processes, as in production, and Chromium.

One session starts, on loopback only:

- the stand-in ntfy server (tests/ntfy_server.py), in a thread of this
  process so each test can tell it to fail and read what it received;
- the web app under gunicorn, DEBUG off, static files collected (hashed and
  compressed) and served by WhiteNoise, as the Procfile's `web` runs it;
- a real `manage.py dbtasks_worker` subprocess, which tests may stop and
  start again;
- a file SQLite database, migrated and seeded with a user by subprocesses.

gunicorn and the worker are tests/live.py's services, as in the load and
outage tests: one way to start, wait for and stop a process.

This process never touches the ORM: Playwright's sync API runs an event loop
in this thread, and Django refuses database access from one (it would need
DJANGO_ALLOW_ASYNC_UNSAFE). Everything the tests know comes through the
browser or the stand-in.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path

import pytest
from playwright.sync_api import Browser
from playwright.sync_api import ConsoleMessage
from playwright.sync_api import Page
from playwright.sync_api import Playwright
from playwright.sync_api import Response
from playwright.sync_api import expect
from playwright.sync_api import sync_playwright

from tests import live
from tests.live import BASE_DIR
from tests.live import Service
from tests.live import child_env
from tests.live import start_web
from tests.live import wait_until
from tests.ntfy_server import NtfyStandIn

ARTIFACTS = BASE_DIR / "test-artifacts"
DEBIAN_CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    # No calls home from the browser: these tests stay on loopback.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
USERNAME = "e2e-user"
# A staff user: the header's links to /ops/ and /admin/, and the /ops/ pages.
STAFF_USERNAME = "e2e-staff"
# The README screenshot's user: a list with only the tour's notifications.
TOUR_USERNAME = "demo"
# A throwaway password for throwaway users in a throwaway database.
PASSWORD = "e2e-password-4f7c1b"
# Generous for a shared 2-core machine; a passing run is much faster.
# Milliseconds, as Playwright counts, stretched by TEST_TIMEOUT_FACTOR.
STATUS_TIMEOUT = round(live.patience(20) * 1000)

expect.set_options(timeout=round(live.patience(10) * 1000))


def manage(*args: str, env: dict[str, str]) -> None:
    """Run a management command in a subprocess; fail the session with its output."""
    result = live.manage(*args, env=env)
    if result.returncode != 0:
        pytest.fail(f"manage.py {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")


@pytest.fixture(scope="session")
def ntfy_stand_in() -> Iterator[NtfyStandIn]:
    with NtfyStandIn(topic="e2e") as stand_in:
        yield stand_in


@pytest.fixture
def ntfy(ntfy_stand_in: NtfyStandIn) -> Iterator[NtfyStandIn]:
    """The session's stand-in, answering like ntfy and with no requests recorded."""
    ntfy_stand_in.reset()
    yield ntfy_stand_in
    ntfy_stand_in.reset()


@dataclass(frozen=True)
class App:
    """What every app process shares: its environment, and a directory for logs."""

    env: dict[str, str]
    dir: Path


@pytest.fixture(scope="session")
def app(tmp_path_factory: pytest.TempPathFactory, ntfy_stand_in: NtfyStandIn) -> App:
    """A migrated database with the test users, and collected static files."""
    tmp = tmp_path_factory.mktemp("e2e")
    # tests.settings (fast password hashing, immediate retries, max 3 attempts)
    # with production static files: see tests/e2e/settings.py.
    env = child_env(
        f"sqlite:///{tmp / 'e2e.sqlite3'}",
        DJANGO_SETTINGS_MODULE="tests.e2e.settings",
        STATIC_ROOT=str(tmp / "staticfiles"),
        NTFY_URL=ntfy_stand_in.topic_url,
        # The worker writes each email there (dbtasks.mail): test_accounts reads them.
        EMAIL_FILE_PATH=str(tmp / "mail"),
        LOG_LEVEL="INFO",
    )
    manage("migrate", "--noinput", env=env)
    manage("collectstatic", "--noinput", "--verbosity", "0", env=env)
    users = "; ".join(
        f"User.objects.create_user({username!r}, password={PASSWORD!r}, is_staff={staff!r})"
        for username, staff in ((USERNAME, False), (TOUR_USERNAME, False), (STAFF_USERNAME, True))
    )
    manage(
        "shell",
        "--no-imports",
        "-c",
        f"from django.contrib.auth import get_user_model; User = get_user_model(); {users}",
        env=env,
    )
    return App(env, tmp)


@pytest.fixture(scope="session")
def app_server(app: App) -> Iterator[str]:
    """The web app under gunicorn, as the Procfile runs it; yields its base URL."""
    web, url = start_web(app.env, app.dir / "web.log", workers=2)
    try:
        yield url
    finally:
        web.stop(timeout=10)


# What the worker logs once it is ready (dbtasks/worker/loop.py, at INFO).
STARTED = " started: queues="


class Worker(Service):
    """The `dbtasks_worker` subprocess; tests stop it to hold tasks in Ready."""

    def start(self, *extra_args: str) -> Worker:
        """Start the worker, with extra command-line options for this run only.

        Returns once it has logged its start (its signal handlers are in
        place by then): a SIGTERM while Python still imports Django would
        end it with the default action (-15) instead of a clean stop.
        """
        logged = self.size()  # only this start's lines are read while waiting
        base = self.argv
        self.argv = [*base, *extra_args]
        try:
            super().start()
        finally:
            self.argv = base
        wait_until(
            lambda: STARTED in self.output(since=logged) or not self.running,
            timeout=60,
            what="the worker to start",
            details=self.describe,
        )
        return self

    def ensure_running(self) -> None:
        if not self.running:
            self.start()


@pytest.fixture(scope="session")
def worker_process(app: App) -> Iterator[Worker]:
    worker = Worker(
        "worker",
        [sys.executable, "manage.py", "dbtasks_worker", "--grace", "5"],
        app.env,
        app.dir / "worker.log",
    )
    worker.start()
    yield worker
    returncode = worker.stop()
    assert returncode in (0, None), worker.describe()


@pytest.fixture
def dbtasks_worker(worker_process: Worker) -> Worker:
    """The worker, running (a test before may have stopped it)."""
    worker_process.ensure_running()
    return worker_process


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as playwright:
        yield playwright


@pytest.fixture(scope="session")
def browser(playwright: Playwright) -> Iterator[Browser]:
    # Debian's Chromium where it is installed (`make browser`), else the one
    # `playwright install chromium` downloaded.
    executable = str(DEBIAN_CHROMIUM) if DEBIAN_CHROMIUM.exists() else None
    browser = playwright.chromium.launch(
        executable_path=executable, args=CHROMIUM_ARGS, headless=True
    )
    yield browser
    browser.close()


def artifact_path(node: pytest.Item) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS / (re.sub(r"[^\w.-]+", "_", node.name) + ".png")


@dataclass
class BrowserErrors:
    """What went wrong in the page: script errors, refused or missing assets.

    HTTP errors of documents are not here: a form with errors answers 422 on
    purpose (the tests look at the page for those).
    """

    messages: list[str] = field(default_factory=list)

    def console(self, message: ConsoleMessage) -> None:
        # Chromium logs every 4xx/5xx as "Failed to load resource"; the
        # response handler below looks at those. What is left is a script
        # error or a Content Security Policy violation ("Refused to ...").
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            self.messages.append(message.text)

    def response(self, response: Response) -> None:
        asset = response.request.resource_type in {"script", "stylesheet", "image", "font"}
        if asset and response.status >= 400:
            self.messages.append(f"{response.status} for {response.url}")


def new_page(
    request: pytest.FixtureRequest, browser: Browser, app_server: str, *, javascript: bool
) -> Iterator[Page]:
    context = browser.new_context(
        base_url=app_server,
        java_script_enabled=javascript,
        viewport={"width": 1200, "height": 900},
    )
    page = context.new_page()
    errors = BrowserErrors()
    page.on("console", errors.console)
    page.on("response", errors.response)
    page.on("pageerror", lambda error: errors.messages.append(f"page error: {error}"))
    yield page
    # A screenshot of how each test left the page, passed or failed.
    page.screenshot(path=artifact_path(request.node), full_page=True)
    context.close()
    assert not errors.messages, f"the browser reported errors: {errors.messages}"


@pytest.fixture
def page(request: pytest.FixtureRequest, browser: Browser, app_server: str) -> Iterator[Page]:
    yield from new_page(request, browser, app_server, javascript=True)


@pytest.fixture
def page_without_javascript(
    request: pytest.FixtureRequest, browser: Browser, app_server: str
) -> Iterator[Page]:
    yield from new_page(request, browser, app_server, javascript=False)


def sign_in(page: Page, username: str = USERNAME) -> None:
    """Sign in through the login form; end on the index page."""
    page.goto("/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#notification-form")).to_be_visible()


@pytest.fixture
def signed_in(page: Page, dbtasks_worker: Worker, ntfy: NtfyStandIn) -> Page:
    """A signed-in page, with the worker running and the stand-in answering like ntfy."""
    sign_in(page)
    return page
