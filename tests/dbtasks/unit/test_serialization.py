"""Arguments and return values must survive a JSON round trip, or be refused up front."""

from __future__ import annotations

import datetime
import math

import pytest

from dbtasks.exceptions import InvalidTaskArguments
from dbtasks.rows import serialize_arguments
from dbtasks.serialization import to_json_value

ADVICE = " Pass ids, strings and numbers, and load objects inside the task."


@pytest.mark.parametrize(
    ("args", "kwargs", "stored"),
    [
        ((), {}, {"args": [], "kwargs": {}}),
        ((1, "é", None, True, 2.5), {"a": [1, {"b": "c"}]}, None),
        # Django's normalize_json: tuples become lists, UTF-8 bytes become str.
        ((1, (2, 3)), {"k": b"x"}, {"args": [1, [2, 3]], "kwargs": {"k": "x"}}),
        # The text backslash-u-0000 is not a NUL character.
        (("\\u0000",), {}, {"args": ["\\u0000"], "kwargs": {}}),
        ((2**70,), {}, {"args": [2**70], "kwargs": {}}),
    ],
)
def test_json_values_are_stored(args, kwargs, stored):
    expected = stored or {"args": list(args), "kwargs": kwargs}

    assert serialize_arguments(args, kwargs) == expected


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        pytest.param(
            (datetime.datetime(2026, 1, 1),),
            {},
            "Task arguments cannot be stored as JSON: Unsupported type: "
            "<class 'datetime.datetime'>.",
            id="datetime",
        ),
        pytest.param(
            (),
            {"ids": {1, 2}},
            "Task arguments cannot be stored as JSON: Unsupported type: <class 'set'>.",
            id="set",
        ),
        pytest.param(
            (object(),),
            {},
            "Task arguments cannot be stored as JSON: Unsupported type: <class 'object'>.",
            id="object",
        ),
        pytest.param(
            ({1: "a"},),
            {},
            "Task arguments would not survive a JSON round trip (dict keys must be strings): "
            "{'args': [{1: 'a'}], 'kwargs': {}} would come back as "
            "{'args': [{'1': 'a'}], 'kwargs': {}}.",
            id="int-key",
        ),
        pytest.param(
            (math.nan,),
            {},
            "Task arguments cannot be stored as JSON: Out of range float values are not JSON "
            "compliant: nan.",
            id="nan",
        ),
        pytest.param(
            (),
            {"x": math.inf},
            "Task arguments cannot be stored as JSON: Out of range float values are not JSON "
            "compliant: inf.",
            id="inf",
        ),
        pytest.param(
            ("a\x00b",),
            {},
            "Task arguments cannot be stored as JSON: it contains a NUL character.",
            id="nul-in-value",
        ),
        pytest.param(
            (),
            {"k\x00": 1},
            "Task arguments cannot be stored as JSON: it contains a NUL character.",
            id="nul-in-key",
        ),
        pytest.param(
            ("\ud800",),
            {},
            "Task arguments cannot be stored as JSON: it contains text that is not valid Unicode.",
            id="lone-surrogate",
        ),
        pytest.param(
            (b"\xff",),
            {},
            "Task arguments cannot be stored as JSON: Unsupported value: <class 'bytes'>.",
            id="bytes-not-utf8",
        ),
    ],
)
def test_values_that_would_come_back_different_are_refused(args, kwargs, message):
    with pytest.raises(InvalidTaskArguments) as excinfo:
        serialize_arguments(args, kwargs)

    assert str(excinfo.value) == message + ADVICE


def test_return_values_are_checked_the_same_way():
    assert to_json_value(("a", 1), what="The task's return value") == ["a", 1]

    with pytest.raises(TypeError) as excinfo:
        to_json_value(object(), what="The task's return value")
    assert str(excinfo.value) == (
        "The task's return value cannot be stored as JSON: Unsupported type: <class 'object'>."
    )
