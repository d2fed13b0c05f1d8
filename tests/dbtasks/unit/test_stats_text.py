"""The small text helpers the dashboard and the health check print."""

from __future__ import annotations

from datetime import timedelta

import pytest

from dbtasks.ops.health import HealthReport
from dbtasks.ops.health import first_line
from dbtasks.ops.text import format_duration
from dbtasks.ops.text import last_traceback_line


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, "-"),
        (timedelta(0), "<1s"),
        (timedelta(milliseconds=999), "<1s"),
        (timedelta(seconds=2), "2s"),
        (timedelta(seconds=59.9), "59s"),
        (timedelta(minutes=5), "5m"),
        (timedelta(minutes=5, seconds=3), "5m 3s"),
        (timedelta(hours=2, minutes=10, seconds=59), "2h 10m"),
        (timedelta(hours=1, seconds=5), "1h"),
        (timedelta(days=3, hours=4, minutes=1), "3d 4h"),
    ],
)
def test_format_duration(value, text):
    assert format_duration(value) == text


def test_last_traceback_line_is_the_error_line():
    traceback = (
        "Traceback (most recent call last):\n"
        '  File "x.py", line 1, in <module>\n'
        "ValueError: boom\n\n"
    )
    assert last_traceback_line(traceback) == "ValueError: boom"
    assert last_traceback_line("") == ""
    assert last_traceback_line("E: " + "x" * 1000, limit=10) == "E: xxxxxx…"


def test_first_line_skips_blank_lines_and_driver_hints():
    error = RuntimeError("\nconnection refused\n\tIs the server running?")
    assert first_line(error) == "connection refused"
    assert first_line(RuntimeError()) == "RuntimeError"


def test_report_lines():
    assert HealthReport(problems=(), ready=0, workers_alive=1).line() == (
        "OK: 0 ready, 1 worker alive"
    )
    assert HealthReport(
        problems=(), ready=3, oldest_ready_age=timedelta(seconds=2), workers_alive=2
    ).line() == ("OK: 3 ready, oldest 2s, 2 workers alive")
    assert HealthReport(problems=("a", "b")).line() == "UNHEALTHY: a; b"
