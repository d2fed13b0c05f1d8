"""What a row shows of a delivery: its state in words, errors plain and whole."""

from __future__ import annotations

import traceback

import pytest

from dbtasks.exceptions import PermanentFailure
from messagecenter.errors import one_line_error
from messagecenter.errors import plain_error
from messagecenter.ntfy import NtfyRejected
from messagecenter.results import EXPIRED
from tests.deliveries import AT
from tests.deliveries import delivery
from tests.deliveries import error


def formatted(error: BaseException) -> str:
    return "".join(traceback.format_exception(error))


def raised(make_error):
    try:
        make_error()
    except BaseException as error:  # noqa: BLE001 - capturing whatever was raised is the point
        return error
    raise AssertionError("nothing was raised")


def test_one_line_error_is_class_and_message():
    error = raised(lambda: int("x"))
    assert one_line_error("builtins.ValueError", formatted(error)) == (
        "ValueError: invalid literal for int() with base 10: 'x'"
    )


def test_one_line_error_shows_the_last_exception_of_a_chain():
    def chained():
        try:
            raise NtfyRejected("ntfy answered 403 Forbidden: forbidden.", status_code=403)
        except NtfyRejected as error:
            raise PermanentFailure(str(error)) from error

    text = formatted(raised(chained))
    assert "NtfyRejected" in text  # the cause is in the traceback...
    assert one_line_error("dbtasks.exceptions.PermanentFailure", text) == (
        "PermanentFailure: ntfy answered 403 Forbidden: forbidden."
    )  # ...but the row shows the exception that ended the task.


def test_one_line_error_keeps_only_the_first_line_of_a_message():
    def multi_line():
        raise RuntimeError("first line\nsecond line\nthird")

    assert one_line_error("builtins.RuntimeError", formatted(raised(multi_line))) == (
        "RuntimeError: first line"
    )


def test_one_line_error_without_message_or_traceback():
    assert one_line_error("builtins.KeyboardInterrupt", "KeyboardInterrupt\n") == (
        "KeyboardInterrupt"
    )
    assert one_line_error("dbtasks.exceptions.WorkerLost", "") == "WorkerLost"


def test_one_line_error_is_bounded():
    line = one_line_error("builtins.ValueError", "ValueError: " + "x" * 1000)
    assert len(line) == len("ValueError: ") + 300
    assert line.endswith("…")


@pytest.mark.parametrize(
    ("state", "label", "finished"),
    [
        ("SCHEDULED", "Scheduled", False),
        ("READY", "Queued", False),
        ("RUNNING", "Running", False),
        ("SUCCESSFUL", "Delivered", True),
        ("FAILED", "Failed", True),
        ("CANCELLED", "Cancelled", True),
        (EXPIRED, "Expired", True),
    ],
)
def test_delivery_label_and_whether_it_is_finished(state, label, finished):
    shown = delivery(state)
    assert shown.label == label
    assert shown.is_finished is finished
    assert shown.can_retry is (state in ("FAILED", "CANCELLED"))
    assert shown.can_cancel is (state in ("SCHEDULED", "READY", "RUNNING"))


def test_delivery_is_retrying_after_a_failed_attempt():
    failed = error("ntfy answered 500 Internal Server Error.", "messagecenter.ntfy.NtfyUnavailable")
    assert delivery("SCHEDULED", attempts=1, last_error=failed).is_retrying
    assert delivery("SCHEDULED", attempts=1, last_error=failed).label == "Retrying"
    assert delivery("READY", attempts=1, last_error=failed).is_retrying
    assert not delivery("READY").is_retrying
    assert not delivery("RUNNING", attempts=2, last_error=failed).is_retrying
    assert not delivery("FAILED", attempts=1, last_error=failed).is_retrying


def test_a_queued_delivery_with_no_worker_is_stalled():
    assert delivery("READY", worker_running=False).is_stalled
    assert not delivery("READY").is_stalled
    assert not delivery("SCHEDULED", worker_running=False).is_stalled


def test_delivered_shows_ntfys_id_and_when():
    shown = delivery("SUCCESSFUL", attempts=2, return_value={"id": "abc123", "time": 1})
    assert shown.ntfy_id == "abc123"
    assert shown.delivered_at == AT
    assert delivery("FAILED", return_value={"id": "abc123"}).ntfy_id == ""


@pytest.mark.parametrize(
    ("raised", "words"),
    [
        (
            error("ntfy answered 403 Forbidden: forbidden."),
            "The ntfy server refused the message: this topic may not be written to (HTTP 403).",
        ),
        (
            error("ntfy answered 500 Internal Server Error.", "messagecenter.ntfy.NtfyUnavailable"),
            "The ntfy server had a problem of its own (HTTP 500).",
        ),
        (
            error("Cannot reach ntfy at http://x/: refused.", "messagecenter.ntfy.NtfyUnavailable"),
            "The ntfy server could not be reached.",
        ),
        (
            error("Notification 3 no longer exists."),
            "The notification was deleted before it could be sent.",
        ),
        (
            error("lost", "dbtasks.exceptions.WorkerLost"),
            "The worker sending it stopped unexpectedly; it will be tried again.",
        ),
        (error("odd", "builtins.KeyError"), "Sending failed with an unexpected error (KeyError)."),
    ],
)
def test_errors_in_plain_words(raised, words):
    assert plain_error(raised) == words
    assert delivery("FAILED", attempts=1, last_error=raised).error_summary == words


def test_error_detail_is_the_whole_message():
    long = error("ntfy answered 400 Bad Request: " + "x" * 1000)
    detail = delivery("FAILED", attempts=1, last_error=long).error_detail
    assert detail == "PermanentFailure: ntfy answered 400 Bad Request: " + "x" * 1000
