"""The polls each web process answered "nothing changed", remembered until Postgres says otherwise.

Most polls find nothing changed (a row queued behind others, a long
delivery running), and on Postgres even that answer costs a round trip that
costs more than the rest of the request (docs/performance.md, figure 6). So
each web process keeps one connection ``LISTEN``ing on ``messagecenter_live``,
and triggers (migration 0010) ``NOTIFY`` it of every change a poll's answer
depends on, by name:

- ``r<id>,<id>...``: results whose state, attempts, due time or
  cancellation changed, or that were deleted (one notification per
  statement, however many rows it touched: a worker's batch);
- ``n<id>``: a notification, or one of its channels, changed (a retry
  points it at new results);
- ``u<id>``: a user's password, activity or live key changed (sign-out,
  password change: their token no longer holds).

A poll answered 204 is remembered (``remember()``) under its token and the
rows it saw, with the names it depends on: its user, its notifications and
every result in its rows' progress. The same poll again is answered 204
without a query (``unchanged()``) while none of those names changed, none
of its rows fell due, and the listener is known to be alive.

Why that answer is the database's:

- The tick is read before the query (``reading()``): a change the query's
  snapshot missed commits after it, and Postgres sends its NOTIFY after
  the commit, so it is heard after that tick and voids the answer.
- A change is heard milliseconds after its commit; until then a poll gets
  the answer it would have got a moment earlier.
- Only "nothing changed" is remembered, for the exact rows a page sent: a
  remembered answer can only repeat that.
- The listener (``live_listener.py``) proves it is alive every 2 seconds
  (``SELECT clock_timestamp()``, which also gives the server's clock for
  due times). When its connection fails, or it falls silent for
  ``SILENCE`` seconds, nothing remembered is used again: polls query until
  it listens again.

Not on SQLite (no NOTIFY), nor behind a transaction pooler (``LISTEN``
needs a session of its own), nor inside a transaction (ATOMIC_REQUESTS:
the request's own changes would be NOTIFYed only at its commit); there
every poll queries (``live_listener.active()`` decides). ``LIVE_MEMO =
False`` turns it off (one connection fewer per web process).
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from collections.abc import Hashable
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC
from datetime import datetime

# The listener silent this long (it speaks every 2 s): nothing remembered
# is used until it speaks again.
SILENCE = 5.0
# The longest an answer is remembered, whatever happens (seconds).
LONGEST = 60.0
# Remembered polls per process (least recently used go first): ~1 KB each.
CAPACITY = 10_000
# Changed names kept; past this many, everything remembered is forgotten.
CHANGES = 100_000

Row = tuple[int, str, datetime | None]  # (notification id, progress, due)


@dataclass(frozen=True, slots=True)
class Reading:
    """When a poll's query began, as the memo counts: its listener's session and tick."""

    session: int
    tick: int


@dataclass(frozen=True, slots=True)
class _Answer:
    reading: Reading
    names: tuple[str, ...]
    rows: tuple[Row, ...]
    until: float  # on the monotonic clock


class Memo:
    """Remembered "nothing changed" answers, voided by the changes the listener hears."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._session = 0  # counts the listener's sessions
        self._listening = False
        self._alive_at = -math.inf
        self._offset = 0.0  # the server's clock minus ours, in seconds
        self._tick = 0  # counts the changes heard
        self._floor = 0  # answers read before this tick are void
        self._changed: dict[str, int] = {}  # name -> the tick it last changed at
        self._answers: OrderedDict[Hashable, _Answer] = OrderedDict()

    # --- The listener's side ---------------------------------------------------------

    def listening(self) -> None:
        """A new session is LISTENing: what the last one heard or missed is forgotten."""
        with self._lock:
            self._session += 1
            self._listening = True
            self._alive_at = self._clock()
            self._forget_all()

    def lost(self) -> None:
        """The listener's connection failed: it may miss changes from now on."""
        with self._lock:
            self._listening = False
            self._forget_all()

    def alive(self, offset: float | None = None) -> None:
        """The listener's connection answered; ``offset``: the server's clock minus ours."""
        with self._lock:
            self._alive_at = self._clock()
            if offset is not None:
                self._offset = offset

    def heard(self, payload: str) -> None:
        """A trigger's notification: ``r1,2,3``, ``n5`` or ``u7`` (see the module's doc)."""
        kind, ids = payload[:1], payload[1:]
        with self._lock:
            self._tick += 1
            for pk in ids.split(","):
                self._changed[kind + pk] = self._tick
            if len(self._changed) > CHANGES:
                self._changed.clear()
                self._floor = self._tick

    def _forget_all(self) -> None:
        self._answers.clear()
        self._changed.clear()
        self._floor = self._tick

    # --- The poll's side -------------------------------------------------------------

    def reading(self) -> Reading | None:
        """Taken before a poll's query; None while nothing can be remembered."""
        with self._lock:
            if not self._usable():
                return None
            return Reading(self._session, self._tick)

    def unchanged(self, key: Hashable) -> tuple[Row, ...] | None:
        """The rows of the answer remembered under ``key`` if it still holds, else None."""
        with self._lock:
            answer = self._answers.get(key)
            if answer is None:
                return None
            if self._holds(answer):
                self._answers.move_to_end(key)
                return answer.rows
            del self._answers[key]
            return None

    def remember(
        self, reading: Reading, key: Hashable, names: Iterable[str], rows: Iterable[Row]
    ) -> None:
        """Remember that the poll ``key``, read at ``reading``, found nothing changed."""
        rows = tuple(rows)
        now = self._clock()
        until = now + LONGEST
        with self._lock:
            # Due times are the server's: how far ahead, on its clock.
            server_now = datetime.fromtimestamp(time.time() + self._offset, tz=UTC)
            for _, _, due in rows:
                if due is not None:
                    until = min(until, now + (due - server_now).total_seconds())
            answer = _Answer(reading, tuple(names), rows, until)
            if not self._holds(answer):
                return  # a change came while it was read
            self._answers[key] = answer
            self._answers.move_to_end(key)
            while len(self._answers) > CAPACITY:
                self._answers.popitem(last=False)

    def _usable(self) -> bool:
        return self._listening and self._clock() - self._alive_at <= SILENCE

    def _holds(self, answer: _Answer) -> bool:
        reading = answer.reading
        return (
            self._usable()
            and reading.session == self._session
            and reading.tick >= self._floor
            and self._clock() < answer.until
            and all(self._changed.get(name, 0) <= reading.tick for name in answer.names)
        )


def names_of(owner_id: int, rows: Iterable[Row], pks: Iterable[int]) -> list[str]:
    """What an answer depends on: its user, its notifications, the results in its rows."""
    names = [f"u{owner_id}", *(f"n{pk}" for pk in pks)]
    for _, progress, _ in rows:
        # "<report>|<channel> <channel>...", each "<result id>:<state>:<attempts>" or "".
        for part in progress.replace("|", " ").split(" "):
            result_id = part.partition(":")[0]
            if result_id:
                names.append(f"r{result_id}")
    return names
