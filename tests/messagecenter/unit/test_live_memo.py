"""The memo's rules, on a clock of the test's own: what voids a remembered "nothing changed"."""

from __future__ import annotations

import datetime as dt
import time

import pytest

from messagecenter import live_memo
from messagecenter.live_memo import Memo

KEY = ("token", ((7, "9f86d081884c7d65"),))
ROWS = ((7, "10:BLOCKED:0|11:READY:0", None),)
NAMES = live_memo.names_of(1, ROWS, [7])


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def memo(clock: Clock) -> Memo:
    memo = Memo(clock=clock)
    memo.listening()
    return memo


def remembered(memo: Memo, rows=ROWS, names=NAMES) -> Memo:
    reading = memo.reading()
    assert reading is not None
    memo.remember(reading, KEY, names, rows)
    return memo


def test_an_answer_depends_on_its_user_notifications_and_results():
    assert NAMES == ["u1", "n7", "r10", "r11"]
    # A result that is gone reads "": nothing to name but the notification.
    assert live_memo.names_of(1, [(7, "|12:RUNNING:1 ", None)], [7, 8]) == [
        "u1",
        "n7",
        "n8",
        "r12",
    ]


def test_a_remembered_answer_is_given_again(memo):
    assert memo.unchanged(KEY) is None
    remembered(memo)
    assert memo.unchanged(KEY) == ROWS
    assert memo.unchanged(("other token", KEY[1])) is None


@pytest.mark.parametrize("payload", ["r11", "r3,10,12", "n7", "u1"])
def test_a_change_to_what_it_read_voids_it(memo, payload):
    remembered(memo)
    memo.heard(payload)
    assert memo.unchanged(KEY) is None
    # Gone for good: the next poll queries and remembers anew.
    remembered(memo)
    assert memo.unchanged(KEY) == ROWS


@pytest.mark.parametrize("payload", ["r12", "r1", "r110", "n8", "u2", "n1"])
def test_other_changes_leave_it(memo, payload):
    remembered(memo)
    memo.heard(payload)
    assert memo.unchanged(KEY) == ROWS


def test_a_change_heard_while_the_query_ran_is_not_remembered(memo):
    reading = memo.reading()
    assert reading is not None
    memo.heard("r10")  # committed after the query's snapshot: it may not have seen it
    memo.remember(reading, KEY, NAMES, ROWS)
    assert memo.unchanged(KEY) is None


def test_a_change_heard_before_the_query_does_not_void_it(memo):
    memo.heard("r10")  # committed before: the query saw it
    remembered(memo)
    assert memo.unchanged(KEY) == ROWS


def test_nothing_is_remembered_while_the_listener_is_down(memo):
    remembered(memo)
    memo.lost()
    assert memo.reading() is None
    assert memo.unchanged(KEY) is None
    memo.listening()  # a new session: what the old one missed is unknown
    assert memo.unchanged(KEY) is None
    remembered(memo)
    assert memo.unchanged(KEY) == ROWS


def test_an_answer_read_in_an_earlier_session_is_void(memo):
    reading = memo.reading()
    assert reading is not None
    memo.lost()
    memo.listening()
    memo.remember(reading, KEY, NAMES, ROWS)
    assert memo.unchanged(KEY) is None


def test_a_silent_listener_is_not_trusted(memo, clock):
    remembered(memo)
    clock.now += live_memo.SILENCE + 0.1
    assert memo.unchanged(KEY) is None
    assert memo.reading() is None
    memo.alive()
    remembered(memo)
    assert memo.unchanged(KEY) == ROWS


def test_an_answer_ends_when_a_row_falls_due_on_the_servers_clock(memo, clock):
    # The server's clock runs 30 s ahead of this host's: its due times are too.
    memo.alive(offset=30.0)
    due = dt.datetime.fromtimestamp(time.time() + 30.0 + 20.0, tz=dt.UTC)
    remembered(memo, rows=((7, "10:BLOCKED:0|11:SCHEDULED:0", due),))
    clock.now += 19.0
    memo.alive()
    assert memo.unchanged(KEY) is not None
    clock.now += 2.0
    memo.alive()
    assert memo.unchanged(KEY) is None


def test_an_answer_lasts_at_most_LONGEST(memo, clock):
    remembered(memo)
    for _ in range(int(live_memo.LONGEST // 4) - 1):  # 56 s
        clock.now += 4.0
        memo.alive()
    assert memo.unchanged(KEY) == ROWS
    clock.now += 4.0
    memo.alive()
    assert memo.unchanged(KEY) is None


def test_the_least_recently_used_answers_go_first(memo, monkeypatch):
    monkeypatch.setattr(live_memo, "CAPACITY", 2)
    reading = memo.reading()
    assert reading is not None
    for key in ("a", "b"):
        memo.remember(reading, key, NAMES, ROWS)
    assert memo.unchanged("a") == ROWS  # used: "b" is now the oldest
    memo.remember(reading, "c", NAMES, ROWS)
    assert memo.unchanged("b") is None
    assert memo.unchanged("a") == ROWS
    assert memo.unchanged("c") == ROWS


def test_too_many_changes_void_everything_read_before(memo, monkeypatch):
    monkeypatch.setattr(live_memo, "CHANGES", 3)
    remembered(memo)
    memo.heard("r900,901,902,903")  # forgets which names changed, so forgets all
    assert memo.unchanged(KEY) is None
    remembered(memo)
    assert memo.unchanged(KEY) == ROWS
