"""Which queues a worker serves: --queue and --excluding against the backend's QUEUES."""

from __future__ import annotations

import re

import pytest

from dbtasks.worker import select_queues

CONFIGURED = {"default", "low_priority", "other"}


@pytest.mark.parametrize(
    ("only", "excluding", "expected"),
    [
        (None, (), ("default", "low_priority", "other")),
        ([], (), ("default", "low_priority", "other")),
        (["low_priority"], (), ("low_priority",)),
        (["other", "default"], (), ("default", "other")),
        (None, ["other"], ("default", "low_priority")),
        (["default", "other"], ["other"], ("default",)),
    ],
)
def test_selects_sorted_queues(only, excluding, expected):
    assert select_queues(CONFIGURED, only, excluding) == expected


@pytest.mark.parametrize(
    ("only", "excluding", "message"),
    [
        (["emails"], (), "Unknown queue(s) emails; the backend has default, low_priority, other."),
        (
            None,
            ["sms", "emails"],
            "Unknown queue(s) emails, sms; the backend has default, low_priority, other.",
        ),
        (["default"], ["default"], "No queue left to serve."),
        (None, ["default", "low_priority", "other"], "No queue left to serve."),
    ],
)
def test_refuses_unknown_or_no_queues(only, excluding, message):
    with pytest.raises(ValueError, match=re.escape(message)) as excinfo:
        select_queues(CONFIGURED, only, excluding)

    assert str(excinfo.value) == message


def test_a_backend_without_queues_takes_any_queue_name_but_needs_one():
    # Empty QUEUES disables Django's queue name validation.
    assert select_queues(set(), ["emails", "sms"], ["sms"]) == ("emails",)

    message = "The backend accepts any queue name (QUEUES is empty); pass --queue."
    with pytest.raises(ValueError, match=re.escape(message)) as excinfo:
        select_queues(set(), None, ())
    assert str(excinfo.value) == message
