"""What a row shows of a delivery: the one-line error, labels, when polling stops."""

from __future__ import annotations

import traceback

import pytest
from django.tasks import TaskResult
from django.tasks import TaskResultStatus
from django.tasks.base import TaskError
from django.utils import timezone

from dbtasks.exceptions import PermanentFailure
from messagecenter.ntfy import NtfyRejected
from messagecenter.results import EXPIRED
from messagecenter.results import Delivery
from messagecenter.results import delivery_from_result
from messagecenter.results import one_line_error
from messagecenter.tasks import send_notification


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
    ("status", "label", "finished"),
    [
        ("READY", "Ready", False),
        ("RUNNING", "Running", False),
        ("SUCCESSFUL", "Successful", True),
        ("FAILED", "Failed", True),
        (EXPIRED, "Expired", True),
    ],
)
def test_delivery_label_and_whether_it_is_finished(status, label, finished):
    delivery = Delivery(status=status)
    assert delivery.label == label
    assert delivery.is_finished is finished
    assert delivery.can_retry is (status == "FAILED")


def test_delivery_is_retrying_after_a_failed_attempt():
    assert Delivery(status="READY", attempts=1, last_error="X: y").is_retrying
    assert not Delivery(status="READY").is_retrying
    assert not Delivery(status="FAILED", last_error="X: y").is_retrying


def make_result(status, *, errors=(), worker_ids=(), return_value=None):
    now = timezone.now()
    result = TaskResult(
        task=send_notification,
        id="1",
        status=status,
        enqueued_at=now,
        started_at=now,
        finished_at=now,
        last_attempted_at=now,
        args=[1],
        kwargs={},
        backend="default",
        errors=list(errors),
        worker_ids=list(worker_ids),
    )
    object.__setattr__(result, "_return_value", return_value)
    return result


def test_delivery_from_a_successful_result():
    result = make_result(
        TaskResultStatus.SUCCESSFUL,
        worker_ids=["w1", "w1"],
        errors=[TaskError(exception_class_path="builtins.OSError", traceback="OSError: down\n")],
        return_value={"id": "abc123", "time": 1, "topic": "t"},
    )
    assert delivery_from_result(result) == Delivery(
        status="SUCCESSFUL", attempts=2, last_error="OSError: down", ntfy_id="abc123"
    )


def test_delivery_from_a_failed_result():
    error = TaskError(
        exception_class_path="dbtasks.exceptions.PermanentFailure",
        traceback="dbtasks.exceptions.PermanentFailure: ntfy answered 403 Forbidden.\n",
    )
    result = make_result(TaskResultStatus.FAILED, worker_ids=["w1"], errors=[error])
    assert delivery_from_result(result) == Delivery(
        status="FAILED", attempts=1, last_error="PermanentFailure: ntfy answered 403 Forbidden."
    )
