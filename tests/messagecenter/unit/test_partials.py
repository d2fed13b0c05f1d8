"""The template partials, rendered with a plain context: the UI contract of a row and the form."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest
from django.template.loader import render_to_string

from messagecenter.forms import NotificationForm
from messagecenter.models import Notification
from messagecenter.results import Delivery
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
    html = render_to_string(ROW, {"notification": notification(**fields), "delivery": delivery})
    return parse(html).find("li.notification")


@pytest.mark.parametrize(("status", "attempts"), [("READY", 0), ("RUNNING", 1), ("READY", 2)])
def test_unfinished_row_polls_every_second(status, attempts):
    row = render_row(Delivery(status=status, attempts=attempts, last_error="X: y"))
    assert row.attrs["id"] == "notification-7"
    assert row.attrs["data-status"] == status
    assert row.attrs["hx-get"] == f"/notifications/7/status/?status={status}&attempts={attempts}"
    assert row.attrs["hx-trigger"] == "every 1s"
    assert row.attrs["hx-swap"] == "outerHTML"


@pytest.mark.parametrize("status", ["SUCCESSFUL", "FAILED", "EXPIRED"])
def test_finished_row_does_not_poll(status):
    row = render_row(Delivery(status=status, attempts=1))
    assert row.attrs["data-status"] == status
    assert not POLLING_ATTRIBUTES & set(row.attrs)


@pytest.mark.parametrize(
    ("status", "text"),
    [
        ("READY", "Ready"),
        ("RUNNING", "Running"),
        ("SUCCESSFUL", "Successful"),
        ("FAILED", "Failed"),
        ("EXPIRED", "Expired"),
    ],
)
def test_status_is_told_in_words(status, text):
    row = render_row(Delivery(status=status))
    assert row.find(".status").text == text


@pytest.mark.parametrize(
    ("attempts", "text"), [(0, "0 attempts"), (1, "1 attempt"), (3, "3 attempts")]
)
def test_attempts(attempts, text):
    assert render_row(Delivery(status="RUNNING", attempts=attempts)).find(".attempts").text == text


def test_successful_row_shows_ntfys_message_id():
    row = render_row(Delivery(status="SUCCESSFUL", attempts=1, ntfy_id="xE73Iyuabi"))
    assert row.find(".ntfy-id").text == "xE73Iyuabi"
    assert not row.find_all(".error")
    assert not row.find_all("button.retry")


def test_failed_row_shows_the_error_and_a_retry_button():
    error = "PermanentFailure: ntfy answered 403 Forbidden: forbidden."
    row = render_row(Delivery(status="FAILED", attempts=1, last_error=error))
    assert row.find(".error").text == error
    form = row.find("form")
    assert form.attrs["method"] == "post"
    assert form.attrs["action"] == "/notifications/7/retry/"
    assert form.attrs["hx-post"] == "/notifications/7/retry/"
    assert form.attrs["hx-target"] == "closest li"
    button = form.find("button.retry")
    assert button.text == "Retry"
    assert not row.find_all(".ntfy-id")


def test_retrying_row_shows_the_last_error_but_no_button():
    row = render_row(Delivery(status="READY", attempts=1, last_error="NtfyUnavailable: 500."))
    assert "NtfyUnavailable: 500." in row.find(".last-error").text
    assert not row.find_all(".error")
    assert not row.find_all("button.retry")


def test_expired_row_says_why():
    row = render_row(Delivery(status="EXPIRED"))
    assert "retention policy" in row.find(".note").text
    assert not row.find_all("button.retry")


def test_row_escapes_what_users_typed():
    html = render_to_string(
        ROW,
        {
            "notification": notification(message="<script>alert(1)</script>", title="<b>x</b>"),
            "delivery": Delivery(status="READY"),
        },
    )
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;b&gt;x&lt;/b&gt;" in html


def test_row_keeps_unicode_and_lets_the_browser_pick_its_direction():
    row = render_row(Delivery(status="READY"), title="שלום", message="مرحبا 👋🏽")
    assert row.find(".notification__title").text == "שלום"
    assert row.find(".notification__title").attrs["dir"] == "auto"
    assert row.find(".notification__message").text == "مرحبا 👋🏽"
    assert row.find(".notification__message").attrs["dir"] == "auto"


def test_row_shows_priority_schedule_and_tags():
    row = render_row(
        Delivery(status="READY"),
        priority=Notification.Priority.URGENT,
        deliver_at=dt.datetime(2025, 11, 22, 8, 0, tzinfo=dt.UTC),
        tags=["warning", "skull"],
    )
    assert "Urgent priority" in row.text
    assert "Scheduled for 22 Nov 2025, 08:00 UTC" in row.text
    assert "Tags: warning, skull" in row.text


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
