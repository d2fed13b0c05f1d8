"""Command-line options shared by the dbtasks management commands.

The ``type=`` functions: argparse calls one with the text given for its
option. Raising ``ArgumentTypeError`` there makes the command stop before it
runs, with ``error: argument --threads: '0' must be at least 1``: the option,
the value and what was wrong, with no traceback.

Then ``--backend`` and ``--queue``, declared once so that every command
spells and explains them alike.
"""

from __future__ import annotations

import argparse
from datetime import timedelta

from dbtasks.options import OptionError
from dbtasks.options import parse_duration


def _whole_number(value: str, *, minimum: int) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
    if number < minimum:
        raise argparse.ArgumentTypeError(f"{value!r} must be at least {minimum}")
    return number


def positive_int(value: str) -> int:
    """A whole number of at least 1: how many threads, tasks or results."""
    return _whole_number(value, minimum=1)


def count(value: str) -> int:
    """A whole number of at least 0: a limit that may be zero."""
    return _whole_number(value, minimum=0)


def _number_between(value: str, maximum: int, *, unit: str, symbol: str) -> float:
    # A bound keeps a typo (an extra 0, seconds for ms) from meaning "hang for days".
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of {unit}") from None
    if not 0 <= number <= maximum:
        raise argparse.ArgumentTypeError(f"{value!r} must be between 0 and {maximum} {symbol}")
    return number


def milliseconds(value: str) -> float:
    """A delay in milliseconds, up to an hour; returned in seconds, as the worker counts."""
    return _number_between(value, 3_600_000, unit="milliseconds", symbol="ms") / 1000


def seconds(value: str) -> float:
    """A number of seconds, up to a day."""
    return _number_between(value, 86_400, unit="seconds", symbol="seconds")


def duration(value: str, *, key: str) -> timedelta:
    """A duration written as in OPTIONS ('5 minutes', '500 ms'); ``key`` names it in errors."""
    try:
        return parse_duration(value, key=key)
    except OptionError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def positive_duration(value: str) -> timedelta:
    """A duration of more than 0: a time limit of zero could never be met."""
    parsed = duration(value, key="the duration")
    if parsed <= timedelta(0):
        raise argparse.ArgumentTypeError(f"{value!r} must be more than 0")
    return parsed


def queue_list(value: str) -> list[str]:
    """Comma-separated queue names; with ``action="extend"`` the option may also repeat."""
    names = [name.strip() for name in value.split(",") if name.strip()]
    if not names:
        raise argparse.ArgumentTypeError("expected one or more queue names")
    return names


def add_backend_argument(parser: argparse.ArgumentParser) -> None:
    """``--backend``: which backend of settings.TASKS the command works with."""
    parser.add_argument(
        "--backend",
        default="default",
        help="Alias of the task backend in settings.TASKS (default: %(default)r).",
    )


def add_queue_argument(parser: argparse.ArgumentParser, *, does: str) -> None:
    """``--queue``/``-q``: some of the backend's queues; ``does`` starts the help text."""
    parser.add_argument(
        "--queue",
        "-q",
        dest="queues",
        type=queue_list,
        action="extend",
        help=f"{does}; repeat or comma-separate (default: every queue of the backend).",
    )
