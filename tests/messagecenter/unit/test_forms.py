"""NotificationForm: ntfy's limits, one-line titles, delivery times, Unicode kept as typed."""

from __future__ import annotations

import datetime as dt

import pytest
from django import forms
from django.utils import timezone

from messagecenter.forms import MAX_DELIVERY_DELAY
from messagecenter.forms import NotificationForm
from tests.dbtasks.helpers import default_backend

# What people type: accents, emoji (with zero-width joiners and skin tones),
# right-to-left scripts with direction marks, CJK, combining characters.
UNICODE_SAMPLES = [
    "Crème brûlée à 15 h, ça marche ?",
    "Family: 👩‍👩‍👧‍👦, thumbs: 👍🏽, flag: 🇺🇦",
    "שלום עולם",
    "مرحبا بالعالم\u200f (RTL mark)",
    "日本語のテキスト",
    "e\u0301 (e + combining acute)",
]


def form(**data):
    return NotificationForm(data={"message": "Hello", "priority": "3", **data})


def test_minimal_form_is_valid_with_default_priority():
    f = form()
    assert f.is_valid(), f.errors
    assert f.cleaned_data["priority"] == 3
    assert f.cleaned_data["title"] == ""
    assert f.cleaned_data["tags"] == []
    assert f.cleaned_data["deliver_at"] is None


def test_unbound_form_selects_default_priority():
    html = str(NotificationForm()["priority"])
    assert '<option value="3" selected>Default</option>' in html


def test_priority_has_ntfy_five_levels():
    field = NotificationForm().fields["priority"]
    assert isinstance(field, forms.ChoiceField)
    assert field.choices == [(1, "Min"), (2, "Low"), (3, "Default"), (4, "High"), (5, "Urgent")]


@pytest.mark.parametrize("value", ["0", "6", "high", ""])
def test_priority_outside_ntfy_levels_is_an_error(value):
    f = form(priority=value)
    assert not f.is_valid()
    assert "priority" in f.errors


def test_message_is_required():
    f = NotificationForm(data={"message": "", "priority": "3"})
    assert not f.is_valid()
    assert f.errors["message"] == ["This field is required."]


def test_message_of_4096_bytes_is_accepted():
    assert form(message="a" * 4096).is_valid()
    # 1,024 emoji of 4 bytes each: 4,096 bytes exactly.
    assert form(message="😀" * 1024).is_valid()


def test_message_over_4096_bytes_names_its_size():
    # 1,025 characters only, but 4,100 bytes in UTF-8.
    f = form(message="😀" * 1025)
    assert not f.is_valid()
    assert f.errors["message"] == [
        "This message is 4100 bytes in UTF-8; ntfy accepts at most 4096. Shorten it by 4 bytes."
    ]


def test_message_line_breaks_are_kept_as_typed():
    # Browsers submit a textarea's line breaks as CRLF.
    f = form(message="line one\r\nline two\r\n\r\nline four")
    assert f.is_valid()
    assert f.cleaned_data["message"] == "line one\nline two\n\nline four"


@pytest.mark.parametrize("text", UNICODE_SAMPLES)
def test_any_unicode_is_kept_intact(text):
    tag = text.replace(",", "")[:20].strip()
    f = form(message=text, title=text, tags=f"{tag}, tada")
    assert f.is_valid(), f.errors
    assert f.cleaned_data["message"] == text
    assert f.cleaned_data["title"] == text
    assert f.cleaned_data["tags"] == [tag, "tada"]


@pytest.mark.parametrize(
    "title", ["two\nlines", "carriage\rreturn", "a\ttab", "line\u2028separator", "bell\x07"]
)
def test_title_must_be_one_line(title):
    f = form(title=title)
    assert not f.is_valid()
    assert f.errors["title"] == [
        "The title must be a single line, without line breaks, tabs or control characters."
    ]


@pytest.mark.parametrize("field", ["message", "title"])
def test_nul_characters_are_refused(field):
    f = form(**{field: "a\x00b"})
    assert not f.is_valid()
    assert field in f.errors


def test_title_longer_than_250_characters_is_an_error():
    assert not form(title="x" * 251).is_valid()
    assert form(title="é" * 250).is_valid()


def test_tags_are_split_on_commas():
    f = form(tags=" warning, , skull ,tada ")
    assert f.is_valid()
    assert f.cleaned_data["tags"] == ["warning", "skull", "tada"]


def test_too_many_tags_is_an_error():
    f = form(tags="a,b,c,d,e,f")
    assert not f.is_valid()
    assert f.errors["tags"] == ["At most 5 tags."]


def local_input(value: dt.datetime) -> str:
    """How a datetime-local input submits a time (no seconds, no zone)."""
    return timezone.localtime(value).strftime("%Y-%m-%dT%H:%M")


def test_delivery_time_in_the_future_is_accepted():
    at = timezone.now() + dt.timedelta(hours=2)
    f = form(deliver_at=local_input(at))
    assert f.is_valid(), f.errors
    assert f.cleaned_data["deliver_at"] == at.replace(second=0, microsecond=0)


def test_delivery_time_in_the_past_is_an_error():
    f = form(deliver_at=local_input(timezone.now() - dt.timedelta(minutes=5)))
    assert not f.is_valid()
    assert f.errors["deliver_at"] == ["Choose a time in the future, or leave it empty to send now."]


def test_delivery_time_too_far_ahead_is_an_error():
    far = timezone.now() + MAX_DELIVERY_DELAY + dt.timedelta(hours=1)
    f = form(deliver_at=local_input(far))
    assert not f.is_valid()
    assert f.errors["deliver_at"] == ["Choose a time within the next 7 days."]


def test_max_delivery_delay_stays_below_the_purge_of_unfinished_tasks(settings):
    # A task waiting longer than purge.unfinished would be deleted unrun.

    purge = default_backend().config.purge
    assert purge.unfinished is None or purge.unfinished > MAX_DELIVERY_DELAY


def test_delivery_time_is_read_in_the_senders_time_zone(settings):
    settings.TIME_ZONE = "UTC"
    tomorrow = (timezone.now() + dt.timedelta(days=1)).date()
    f = form(deliver_at=f"{tomorrow.isoformat()}T09:00", time_zone="Asia/Tokyo")
    assert f.is_valid(), f.errors
    # 09:00 in Tokyo (UTC+9) is 00:00 UTC.
    assert f.cleaned_data["deliver_at"] == dt.datetime.combine(
        tomorrow, dt.time(0, 0), tzinfo=dt.UTC
    )


def test_unknown_time_zone_falls_back_to_the_servers(settings):
    settings.TIME_ZONE = "UTC"
    tomorrow = (timezone.now() + dt.timedelta(days=1)).date()
    f = form(deliver_at=f"{tomorrow.isoformat()}T09:00", time_zone="Mars/Olympus_Mons")
    assert f.is_valid(), f.errors
    assert f.cleaned_data["deliver_at"] == dt.datetime.combine(
        tomorrow, dt.time(9, 0), tzinfo=dt.UTC
    )


def test_first_field_with_an_error_gets_autofocus():
    f = NotificationForm(data={"message": "", "priority": "9"})
    assert not f.is_valid()
    assert "autofocus" in str(f["message"])
    assert "autofocus" not in str(f["priority"])


def test_more_options_open_only_when_one_of_them_matters():
    assert not NotificationForm().shows_more_options
    assert not NotificationForm(data={"message": "Hi", "priority": "3"}).shows_more_options
    assert NotificationForm(data={"message": "Hi", "priority": "5"}).shows_more_options
    assert NotificationForm(data={"message": "Hi", "title": "T"}).shows_more_options
    invalid = NotificationForm(data={"message": "Hi", "priority": "3", "tags": "x" * 5000})
    assert not invalid.is_valid()
    assert invalid.shows_more_options
