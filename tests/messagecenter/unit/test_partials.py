"""The template partials, rendered with a plain context: the UI contract of a row and the form."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest
from django.template.loader import render_to_string

from messagecenter.forms import NotificationForm
from messagecenter.live import fingerprint
from messagecenter.models import Notification
from messagecenter.results import MessageDelivery
from tests.deliveries import delivery
from tests.deliveries import error
from tests.deliveries import message
from tests.html import parse

TEMPLATES = Path(__file__).resolve().parents[3] / "templates"
ROW = "messagecenter/index.html#notification-row"
POLLING_ATTRIBUTES = {"hx-get", "hx-trigger", "hx-swap"}


def notification(**fields):
    values = {
        "pk": 7,
        "message": "Backup finished",
        "title": "Nightly",
        "priority": Notification.Priority.DEFAULT,
        "created_at": dt.datetime(2025, 11, 21, 9, 30, tzinfo=dt.UTC),
        "task_result_id": "42",
        **fields,
    }
    return Notification(**values)


def render_row(delivery, **fields):
    """The row of a notification to one channel, or to several (a MessageDelivery)."""
    shown = delivery if isinstance(delivery, MessageDelivery) else message(delivery)
    html = render_to_string(ROW, {"notification": notification(**fields), "delivery": shown})
    return parse(html).find("li.notification")


@pytest.mark.parametrize(
    ("state", "attempts"), [("SCHEDULED", 0), ("READY", 0), ("RUNNING", 1), ("READY", 2)]
)
def test_unfinished_row_is_followed_by_the_live_channel(state, attempts):
    row = render_row(delivery(state, attempts=attempts))
    assert row.attrs["id"] == "notification-7"
    assert row.attrs["data-status"] == state
    # A fingerprint of the report's progress (none yet) and the channel's.
    assert row.attrs["data-progress"] == f"7.{fingerprint(f'|42:{state}:{attempts}')}"
    # One channel a page: a row never polls by itself.
    assert not POLLING_ATTRIBUTES & set(row.attrs)


@pytest.mark.parametrize("state", ["SUCCESSFUL", "FAILED", "CANCELLED", "EXPIRED"])
def test_finished_row_is_not_followed(state):
    row = render_row(delivery(state, attempts=1))
    assert row.attrs["data-status"] == state
    assert "data-live" not in row.attrs


@pytest.mark.parametrize(
    ("state", "fields", "label", "text"),
    [
        ("SCHEDULED", {}, "Scheduled", "Scheduled for 21 Nov 2025, 09:30 UTC."),
        ("READY", {}, "Queued", "Queued: the next free worker sends it."),
        ("RUNNING", {"attempts": 1}, "Running", "Sending since 21 Nov 2025, 09:30 UTC."),
        (
            "SCHEDULED",
            {"attempts": 2, "last_error": error("ntfy answered 502 Bad Gateway.")},
            "Retrying",
            (
                "Attempt 2 of 5 failed: The ntfy server had a problem of its own (HTTP 502). "
                "Next try at 21 Nov 2025, 09:30 UTC."
            ),
        ),
        ("SUCCESSFUL", {"attempts": 1}, "Delivered", "Delivered 21 Nov 2025, 09:30 UTC."),
        (
            "FAILED",
            {"attempts": 1, "last_error": error("ntfy answered 403 Forbidden.")},
            "Failed",
            "The ntfy server refused the message: this topic may not be written to (HTTP 403).",
        ),
        (
            "CANCELLED",
            {"last_error": error("x", "dbtasks.exceptions.TaskCancelled")},
            "Cancelled",
            "Cancelled 21 Nov 2025, 09:30 UTC; it was not sent.",
        ),
        ("EXPIRED", {}, "Expired", "Its delivery record was deleted by the retention policy."),
    ],
)
def test_each_state_is_told_in_words(state, fields, label, text):
    row = render_row(delivery(state, **fields))
    assert row.find(".status").text == label
    assert " ".join(row.find(".state-line").text.split()) == text


def test_a_queued_row_says_when_no_worker_is_running():
    row = render_row(delivery("READY", worker_running=False))
    assert "data-stalled" in row.attrs
    assert "No worker is running" in row.find(".state-line").text
    assert not row.find_all("a")  # the link to /ops/ is for staff only


@pytest.mark.parametrize(("attempts", "text"), [(1, "1 attempt of 5"), (3, "3 attempts of 5")])
def test_attempts(attempts, text):
    assert render_row(delivery("RUNNING", attempts=attempts)).find(".attempts").text == text


def test_successful_row_shows_ntfys_message_id():
    row = render_row(delivery("SUCCESSFUL", attempts=1, return_value={"id": "xE73Iyuabi"}))
    assert row.find(".ntfy-id").text == "xE73Iyuabi"
    assert not row.find_all(".error")
    assert not row.find_all("button.retry")


def test_failed_row_shows_the_error_in_words_the_details_and_a_retry_button():
    raised = error("ntfy answered 403 Forbidden: forbidden.")
    row = render_row(delivery("FAILED", attempts=1, last_error=raised))
    assert "refused the message" in row.find(".error").text
    # The exact text, in a <details>: reachable by keyboard and touch, not a tooltip.
    details = row.find("details.error-detail")
    assert details.find("code").text == "PermanentFailure: ntfy answered 403 Forbidden: forbidden."
    form = row.find("form.retry-form")
    assert form.attrs["method"] == "post"
    assert form.attrs["action"] == "/notifications/7/retry/"
    assert form.attrs["hx-post"] == "/notifications/7/retry/"
    assert form.attrs["hx-target"] == "closest li"
    assert form.find("button.retry").text == "Retry"
    assert not row.find_all(".ntfy-id")
    assert row.find("details.history").attrs["hx-get"] == "/notifications/7/attempts/"


def test_retrying_row_can_be_cancelled_but_not_retried():
    raised = error("ntfy answered 500.", "messagecenter.ntfy.NtfyUnavailable")
    row = render_row(delivery("SCHEDULED", attempts=1, last_error=raised))
    assert not row.find_all(".error")
    assert not row.find_all("button.retry")
    assert row.find("button.cancel").text == "Cancel"


def test_row_escapes_what_users_typed():
    html = render_to_string(
        ROW,
        {
            "notification": notification(message="<script>alert(1)</script>", title="<b>x</b>"),
            "delivery": message(delivery("READY")),
        },
    )
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;b&gt;x&lt;/b&gt;" in html


def test_row_keeps_unicode_and_lets_the_browser_pick_its_direction():
    row = render_row(delivery("READY"), title="שלום", message="مرحبا 👋🏽")
    assert row.find(".notification__title").text == "שלום"
    assert row.find(".notification__title").attrs["dir"] == "auto"
    assert row.find(".notification__message").text == "مرحبا 👋🏽"
    assert row.find(".notification__message").attrs["dir"] == "auto"


def test_row_shows_priority_and_tags_as_ntfy_does():
    row = render_row(
        delivery("READY"),
        priority=Notification.Priority.URGENT,
        tags=["server", "warning", "skull"],
    )
    assert "Urgent priority" in row.text
    tags = row.find(".tags")
    # Emoji first, as ntfy shows them; the name is there for screen readers.
    assert [tag.text for tag in tags.find_all(".tag")] == ["⚠️warning", "💀skull", "server"]


def test_form_partial_has_the_contracted_fields():
    html = render_to_string(
        "messagecenter/index.html#notification-form", {"form": NotificationForm()}
    )
    form = parse(html).find("#notification-form")
    assert form.tag == "form"
    assert form.attrs["method"] == "post"
    assert form.find("#id_message").tag == "textarea"
    assert form.find("#id_title").attrs["type"] == "text"
    assert form.find("#id_deliver_at").attrs["type"] == "datetime-local"
    options = form.find("#id_priority").find_all("option")
    assert [(option.attrs["value"], option.text) for option in options] == [
        ("1", "Min"),
        ("2", "Low"),
        ("3", "Default"),
        ("4", "High"),
        ("5", "Urgent"),
    ]
    assert "selected" in options[2].attrs
    (submit,) = [b for b in form.find_all("button") if b.attrs.get("type") == "submit"]
    assert submit.text == "Send"
    # Every visible field has a label.
    for name in ("message", "title", "priority", "deliver_at", "tags"):
        assert [label for label in form.find_all("label") if label.attrs["for"] == f"id_{name}"]


def test_form_partial_shows_errors_next_to_the_field():
    form = NotificationForm(data={"message": "", "priority": "3"})
    html = render_to_string("messagecenter/index.html#notification-form", {"form": form})
    field = parse(html).find(".field--message")
    assert field.find("ul.errorlist").text == "This field is required."
    assert field.find("#id_message").attrs["aria-invalid"] == "true"


def template_files():
    return sorted(TEMPLATES.rglob("*.html"))


@pytest.mark.parametrize("path", template_files(), ids=lambda path: path.name)
def test_templates_have_no_inline_script_or_style(path):
    # The Content Security Policy (script-src/style-src 'self') would block them.
    text = re.sub(
        r"{% comment %}.*?{% endcomment %}|{#.*?#}", "", path.read_text(), flags=re.DOTALL
    )
    for match in re.finditer(r"<script\b[^>]*>", text):
        assert "src=" in match.group(0), f"inline <script> in {path.name}"
    assert "<style" not in text
    assert not re.search(r"\sstyle=", text)
    assert not re.search(r"\son[a-z]+=", text), "inline event handler"
    assert "hx-on" not in text


def test_a_row_to_several_channels_shows_each_channels_state_and_the_report():
    shown = message(
        delivery("SUCCESSFUL", attempts=1),
        delivery("FAILED", attempts=1, last_error=error("ntfy answered 403 Forbidden")),
        names=("Laptop", "Phone"),
        report_text="Delivered to 1 of 2 channels; Phone failed: ...",
    )
    row = render_row(shown)
    assert row.attrs["data-status"] == "PARTIAL"
    assert row.find(".notification__head").find("span.status").text == "Partly delivered"
    states = row.find_all("li.channel-state")
    assert [s.find(".channel-state__name").text for s in states] == ["Laptop", "Phone"]
    assert [s.attrs["data-status"] for s in states] == ["SUCCESSFUL", "FAILED"]
    assert "HTTP 403" in states[1].find(".state-line").text
    assert row.find("p.report").text == "Delivered to 1 of 2 channels; Phone failed: ..."
    assert row.find("button.retry").text == "Retry failed channels"


@pytest.mark.parametrize(
    ("states", "status", "label"),
    [
        (("SUCCESSFUL", "RUNNING"), "RUNNING", "Sending"),
        (("SCHEDULED", "READY"), "READY", "Queued"),
        (("SUCCESSFUL", "SUCCESSFUL"), "SUCCESSFUL", "Delivered"),
        (("FAILED", "CANCELLED"), "FAILED", "Failed"),
        (("CANCELLED", "CANCELLED"), "CANCELLED", "Cancelled"),
    ],
)
def test_a_message_to_several_channels_shows_the_most_advanced_state(states, status, label):
    row = render_row(message(*(delivery(state, attempts=1) for state in states)))
    assert row.attrs["data-status"] == status
    assert row.find(".notification__head").find("span.status").text == label
