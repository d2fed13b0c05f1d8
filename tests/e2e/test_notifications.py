"""A person in Chromium: sign in, send, watch the delivery, see failures.

The row's ``data-status`` is the delivery's state (dbtasks' finer states:
SCHEDULED, READY, RUNNING, SUCCESSFUL, FAILED, CANCELLED; or EXPIRED);
``.status`` is what the person reads (Scheduled, Queued, Retrying, Delivered...).
Deliveries go from a real worker process to the stand-in ntfy server (see conftest.py).
"""

from __future__ import annotations

import os
import re
import shutil

import pytest
from playwright.sync_api import Locator
from playwright.sync_api import Page
from playwright.sync_api import expect

from tests.e2e.conftest import ARTIFACTS
from tests.e2e.conftest import STATUS_TIMEOUT
from tests.e2e.conftest import TOUR_USERNAME
from tests.e2e.conftest import USERNAME
from tests.e2e.conftest import Worker
from tests.e2e.conftest import sign_in
from tests.live import BASE_DIR
from tests.ntfy_server import NtfyStandIn
from tests.ntfy_server import Reply

pytestmark = pytest.mark.e2e


def send(page: Page, message: str, *, title: str = "", priority: str = "3") -> Locator:
    """Fill in the form, press Send, and return the new row's locator."""
    page.fill("#id_message", message)
    if title or priority != "3":
        more = page.locator("details.compose__more")
        if more.get_attribute("open") is None:
            more.locator("summary").click()  # the optional fields fold away
        if title:
            page.fill("#id_title", title)
        page.select_option("#id_priority", priority)
    page.get_by_role("button", name="Send").click()
    return page.locator("#notifications li.notification", has_text=message)


def mark_page(page: Page) -> None:
    """Leave a mark in the page's JavaScript state: a reload would wipe it."""
    page.evaluate("window.notReloaded = true")


def assert_not_reloaded(page: Page) -> None:
    assert page.evaluate("window.notReloaded === true"), "the page was reloaded"


def test_sign_in_and_out(page: Page):
    page.goto("/")
    expect(page).to_have_url("/accounts/login/?next=/")

    sign_in(page)

    expect(page).to_have_url("/")
    expect(page.get_by_text(f"Signed in as {USERNAME}")).to_be_visible()
    expect(page.locator("#id_priority")).to_have_value("3")
    page.get_by_role("button", name="Sign out").click()
    expect(page.locator("#id_username")).to_be_visible()
    page.goto("/")
    expect(page).to_have_url("/accounts/login/?next=/")


def test_wrong_password_is_refused(page: Page):
    page.goto("/accounts/login/")
    page.fill("#id_username", USERNAME)
    page.fill("#id_password", "not the password")
    page.get_by_role("button", name="Sign in").click()

    expect(page.locator(".errorlist")).to_be_visible()
    expect(page.locator("#notification-form")).to_have_count(0)


def test_notification_appears_ready_then_turns_successful_live(
    signed_in: Page, dbtasks_worker: Worker, ntfy: NtfyStandIn
):
    page = signed_in
    # No worker yet: the new row must show Ready, and stay so, until one runs.
    dbtasks_worker.stop()
    mark_page(page)

    row = send(page, "Deploy finished: v1.4.2 is live", title="Deploys", priority="4")

    expect(row).to_have_count(1)
    expect(row).to_have_attribute("data-status", "READY")
    expect(row.locator(".status")).to_have_text("Queued")
    expect(row.locator(".state-line")).to_contain_text("No worker is running")
    expect(row.locator(".attempts")).to_have_count(0)
    assert ntfy.requests == []

    dbtasks_worker.start()

    expect(row).to_have_attribute("data-status", "SUCCESSFUL", timeout=STATUS_TIMEOUT)
    expect(row.locator(".status")).to_have_text("Delivered")
    expect(row.locator(".attempts")).to_have_text("1 attempt")
    assert_not_reloaded(page)
    (request,) = ntfy.requests
    published = request.published
    assert published["message"] == "Deploy finished: v1.4.2 is live"
    assert published["title"] == "Deploys"
    assert published["priority"] == 4
    # The row shows the id ntfy gave the message; the stand-in made it up.
    ntfy_id = row.locator(".ntfy-id").inner_text()
    assert len(ntfy_id) == 12
    # The form is fresh again, ready for the next message.
    expect(page.locator("#id_message")).to_have_value("")


def test_failing_delivery_shows_retries_and_ends_failed(
    signed_in: Page, dbtasks_worker: Worker, ntfy: NtfyStandIn
):
    page = signed_in
    ntfy.reply_always(Reply(status=500))
    # A worker that makes one attempt and exits, so the page can be seen
    # between the first attempt and the retries (they follow at once:
    # backoff_factor is 0 in tests/settings.py).
    dbtasks_worker.stop()
    dbtasks_worker.start("--max-tasks", "1")
    mark_page(page)

    row = send(page, "Disk almost full on db-1")

    expect(row.locator(".state-line")).to_contain_text(
        "Attempt 1 of 3 failed", timeout=STATUS_TIMEOUT
    )
    expect(row.locator(".state-line")).to_contain_text("HTTP 500")
    expect(row.locator(".status")).to_have_text("Retrying")
    expect(row.locator(".attempts")).to_have_text("1 attempt of 3")
    assert dbtasks_worker.wait() == 0

    dbtasks_worker.start()

    # tests/settings.py allows 3 attempts in all.
    expect(row).to_have_attribute("data-status", "FAILED", timeout=STATUS_TIMEOUT)
    expect(row.locator(".status")).to_have_text("Failed")
    expect(row.locator(".attempts")).to_have_text("3 attempts")
    expect(row.locator(".error")).to_contain_text("HTTP 500")
    assert_not_reloaded(page)
    assert len(ntfy.requests) == 3
    assert {r.published["message"] for r in ntfy.requests} == {"Disk almost full on db-1"}

    # ntfy is back: Retry queues the delivery again, in the same row.
    ntfy.reply_always(Reply())
    row.locator("button.retry").click()

    expect(row).to_have_attribute("data-status", "SUCCESSFUL", timeout=STATUS_TIMEOUT)
    expect(row.locator(".error")).to_have_count(0)
    assert len(ntfy.requests) == 4
    assert_not_reloaded(page)


def test_validation_errors_show_inline(signed_in: Page, ntfy: NtfyStandIn):
    page = signed_in
    mark_page(page)

    # Blank (spaces only): the browser would send it; the server says no.
    send(page, "   ")

    form = page.locator("#notification-form")
    expect(form.locator(".errorlist")).to_contain_text("This field is required.")

    # 1,400 euro signs: under the textarea's 4,096 characters, but 4,200
    # bytes of UTF-8, over ntfy's limit.
    send(page, "€" * 1400)

    expect(form.locator(".errorlist")).to_contain_text("4200 bytes")
    # The message stays as typed, to be shortened.
    expect(page.locator("#id_message")).to_have_value("€" * 1400)
    expect(page.locator("#notifications li.notification", has_text="€€€")).to_have_count(0)
    assert_not_reloaded(page)
    assert ntfy.requests == []


def test_without_javascript_form_posts_and_reload_shows_status(
    page_without_javascript: Page, dbtasks_worker: Worker, ntfy: NtfyStandIn
):
    page = page_without_javascript
    sign_in(page)

    row = send(page, "Backup completed without JavaScript")

    # A plain POST, then a redirect back to the page.
    expect(page).to_have_url("/")
    expect(row).to_have_count(1)
    expect(row.locator(".status")).to_have_text(re.compile("Queued|Running|Delivered"))
    # No polling without JavaScript: reloading shows the current status.
    reload_until_status(page, row, "SUCCESSFUL")
    expect(row.locator(".status")).to_have_text("Delivered")
    assert ntfy.requests[-1].published["message"] == "Backup completed without JavaScript"

    # Errors come back inline on the re-rendered page too.
    send(page, "")
    expect(page.locator("#notification-form .errorlist")).to_contain_text("This field is required.")


def reload_until_status(page: Page, row: Locator, status: str) -> None:
    """Reload the page until ``row`` shows ``status``, as a person would."""
    for _ in range(STATUS_TIMEOUT // 500):
        try:
            expect(row).to_have_attribute("data-status", status, timeout=500)
        except AssertionError:
            page.reload()
        else:
            return
    expect(row).to_have_attribute("data-status", status, timeout=500)


def test_tour_of_every_final_status(page: Page, dbtasks_worker: Worker, ntfy: NtfyStandIn):
    """One delivered, one failed and one waiting: the README's screenshot.

    Saved to test-artifacts/ every run; `make screenshot` (DOCS_SCREENSHOT=1)
    copies it to docs/screenshot.png.
    """
    sign_in(page, TOUR_USERNAME)

    ntfy.reply_always(Reply(status=503))
    failed = send(page, "Nightly report could not be sent", title="Reports", priority="2")
    expect(failed).to_have_attribute("data-status", "FAILED", timeout=STATUS_TIMEOUT)

    ntfy.reply_always(Reply())
    delivered = send(page, "Your order #1042 has shipped", title="Orders", priority="4")
    expect(delivered).to_have_attribute("data-status", "SUCCESSFUL", timeout=STATUS_TIMEOUT)

    dbtasks_worker.stop()
    waiting = send(page, "Server room temperature is back to normal", title="Facilities")
    expect(waiting).to_have_attribute("data-status", "READY")

    path = ARTIFACTS / "tour.png"
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=path, full_page=True)
    if os.environ.get("DOCS_SCREENSHOT") == "1":
        shutil.copyfile(path, BASE_DIR / "docs" / "screenshot.png")

    # Leave nothing queued behind for the next test's worker to deliver.
    dbtasks_worker.start()
    expect(waiting).to_have_attribute("data-status", "SUCCESSFUL", timeout=STATUS_TIMEOUT)
