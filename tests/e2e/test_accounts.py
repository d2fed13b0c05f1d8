"""A new person in Chromium: sign up, confirm the address from the email, sign in, send.

The app's mail goes through dbtasks' email backend: the worker process
writes each message to EMAIL_FILE_PATH (conftest.py), where this test reads
the verification link. The message then goes to the new user's own private
topic on the stand-in ntfy.
"""

from __future__ import annotations

import email
import re
from email.policy import default
from pathlib import Path

import pytest
from playwright.sync_api import Page
from playwright.sync_api import expect

from tests.e2e.conftest import STATUS_TIMEOUT
from tests.e2e.conftest import App
from tests.e2e.conftest import Worker
from tests.e2e.conftest import sign_in
from tests.live import wait_until
from tests.ntfy_server import NtfyStandIn

pytestmark = pytest.mark.e2e

PASSWORD = "frank-passphrase-9c2e"


def mail_to(directory: Path, address: str) -> str:
    """The body of the one message in ``directory`` sent to ``address``, once it is there.

    Django's file backend writes each message as sent, then a line of dashes.
    """

    def find() -> str | None:
        paths = sorted(directory.glob("*.log")) if directory.exists() else []
        messages = [
            email.message_from_string(path.read_text().split("\n" + "-" * 79)[0], policy=default)
            for path in paths
        ]
        found = [m for m in messages if m["To"] == address]
        if len(found) != 1:
            return None
        body: str = found[0].get_content()
        return body

    return wait_until(find, timeout=60, what=f"the email to {address} in {directory}")


def test_sign_up_verify_sign_in_and_send_to_ones_own_topic(
    page: Page, app: App, dbtasks_worker: Worker, ntfy: NtfyStandIn
) -> None:
    page.goto("/accounts/login/")
    page.get_by_role("link", name="Create an account").click()
    page.fill("#id_username", "frank")
    page.fill("#id_email", "frank@example.com")
    page.fill("#id_password1", PASSWORD)
    page.fill("#id_password2", PASSWORD)
    page.get_by_role("button", name="Sign up").click()
    expect(page.get_by_role("heading", name="Check your email")).to_be_visible()

    text = mail_to(app.dir / "mail", "frank@example.com")
    match = re.search(r"https?://\S+/accounts/verify/\S+/", text)
    assert match, text
    page.goto(match.group(0))
    expect(page.locator(".messages")).to_contain_text("Your email address is confirmed")

    page.fill("#id_username", "frank")
    page.fill("#id_password", PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#notification-form")).to_be_visible()

    page.get_by_role("link", name="Channels", exact=True).click()
    page.get_by_role("link", name="My notifications").click()
    topic = page.locator("#channel-topic").inner_text()
    assert re.fullmatch(r"[-_A-Za-z0-9]{32}", topic)

    page.goto("/")
    page.fill("#id_message", "Frank's first message")
    page.get_by_role("button", name="Send").click()
    row = page.locator("#notifications li.notification", has_text="Frank's first message")
    expect(row).to_have_attribute("data-status", "SUCCESSFUL", timeout=STATUS_TIMEOUT)
    # Only frank's topic: another test's queued message may reach the stand-in meanwhile.
    published = [r.published for r in ntfy.requests if r.published["topic"] == topic]
    assert [p["message"] for p in published] == ["Frank's first message"]

    # A second channel, then one message to both: a row with each channel's
    # state and, once both have it, the delivery report.
    page.get_by_role("link", name="Channels", exact=True).click()
    page.fill("#id_name", "Phone")
    page.fill("#id_topic", "franks-phone")
    page.get_by_role("button", name="Add channel").click()
    page.goto("/")
    page.get_by_label("Phone").check()
    expect(page.get_by_label("My notifications")).to_be_checked()
    page.fill("#id_message", "To both")
    page.get_by_role("button", name="Send").click()
    row = page.locator("#notifications li.notification", has_text="To both")
    expect(row.locator("p.report")).to_have_text(
        "Delivered to all 2 channels.", timeout=STATUS_TIMEOUT
    )
    expect(row).to_have_attribute("data-status", "SUCCESSFUL")
    expect(row.locator("li.channel-state[data-status=SUCCESSFUL]")).to_have_count(2)
    published = [r.published for r in ntfy.requests if r.published["message"] == "To both"]
    assert sorted(p["topic"] for p in published) == sorted([topic, "franks-phone"])


def test_signing_out_in_another_tab_ends_the_live_channel(
    signed_in: Page, dbtasks_worker: Worker, ntfy: NtfyStandIn
) -> None:
    """The poll's token dies with the sign-out: a reload to sign-in, or a notice if typing."""
    page = signed_in
    dbtasks_worker.stop()  # the row stays queued, so the page keeps polling
    page.fill("#id_message", "Waiting for a worker")
    page.get_by_role("button", name="Send").click()
    row = page.locator("#notifications li.notification", has_text="Waiting for a worker")
    expect(row).to_have_attribute("data-status", "READY")

    def sign_out_elsewhere() -> None:
        other = page.context.new_page()
        other.goto("/")
        other.get_by_role("button", name="Sign out").click()
        expect(other.locator("#id_username")).to_be_visible()
        other.close()

    # Nothing typed: the page reloads, onto the sign-in page.
    sign_out_elsewhere()
    expect(page).to_have_url(re.compile(r"/accounts/login/"), timeout=STATUS_TIMEOUT)

    # Something typed: never reloaded under it; the page says why it stopped.
    sign_in(page)
    page.fill("#id_message", "Half-written")
    sign_out_elsewhere()
    expect(page.locator("#live-ended")).to_be_visible(timeout=STATUS_TIMEOUT)
    expect(page.locator("#id_message")).to_have_value("Half-written")
    dbtasks_worker.start()
    # Leave nothing queued behind for the next test's worker to deliver
    # (signed out, the page no longer shows the row: the stand-in does).
    wait_until(
        lambda: any(r.published.get("message") == "Waiting for a worker" for r in ntfy.requests),
        timeout=STATUS_TIMEOUT / 1000,
        what="the queued notification to be delivered",
        details=dbtasks_worker.describe,
    )
