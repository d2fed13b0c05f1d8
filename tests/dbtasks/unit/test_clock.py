"""DatabaseClock: a reading answered late never replaces a closer one."""

from __future__ import annotations

from datetime import UTC
from datetime import datetime
from datetime import timedelta
from types import SimpleNamespace

import pytest
import time_machine

from dbtasks import clock as clock_module
from dbtasks.clock import MAX_ROUND_TRIP
from dbtasks.clock import DatabaseClock

SERVER_AHEAD = 5.0  # seconds: the server's clock is this far ahead of the host's


class Host:
    """This host's clocks, and a server that reads its own after ``delay`` seconds."""

    def __init__(self) -> None:
        self.now = 1_000_000.0
        self.delay = 0.0

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now

    def database_time(self, alias: str) -> datetime:
        # The query hung on the way (a cut network): the server reads its
        # clock late, and the answer comes back at once.
        self.now += self.delay
        return datetime.fromtimestamp(self.now + SERVER_AHEAD, tz=UTC)


@pytest.fixture
def host(monkeypatch) -> Host:
    host = Host()
    monkeypatch.setattr(clock_module, "time", host)
    monkeypatch.setattr(clock_module, "database_time", host.database_time)
    postgres = {"default": SimpleNamespace(vendor="postgresql")}
    monkeypatch.setattr(clock_module, "connections", postgres)
    return host


def test_a_reading_answered_late_does_not_move_the_offset(host):
    clock = DatabaseClock("default")
    assert clock.sync() == timedelta(seconds=SERVER_AHEAD)

    host.delay = 10.0  # off by 5 s if it were taken: half the round trip
    assert clock.sync() == timedelta(seconds=SERVER_AHEAD)

    host.delay = MAX_ROUND_TRIP / 2  # quick enough: taken
    assert clock.sync() == timedelta(seconds=SERVER_AHEAD + MAX_ROUND_TRIP / 4)


def test_a_slow_reading_replaces_a_slower_one(host):
    clock = DatabaseClock("default")
    host.delay = 10.0
    assert clock.sync() == timedelta(seconds=SERVER_AHEAD + 5)  # the first: all there is
    host.delay = 2.0
    assert clock.sync() == timedelta(seconds=SERVER_AHEAD + 1)
    host.delay = 4.0
    assert clock.sync() == timedelta(seconds=SERVER_AHEAD + 1)


def test_a_new_offset_milliseconds_lower_does_not_turn_the_clock_back():
    clock = DatabaseClock("default")
    with time_machine.travel(datetime(2026, 11, 30, 12, tzinfo=UTC), tick=False):
        told = clock()
        clock.offset = timedelta(milliseconds=-3)  # a new reading, a little lower
        assert clock() == told  # held: nothing this worker wrote is in its future
        clock.offset = timedelta(seconds=-2)  # the host's clock was stepped back
        assert clock() == told - timedelta(seconds=2)
        clock.offset = timedelta(0)
        assert clock() == told
