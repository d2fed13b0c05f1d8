"""The Postgres half of ``compiled.py``: a statement prepared once per session, then executed.

Parsing and planning the poll's statement took the server longer than
running it. So each connection ``PREPARE``s it once, by name, and from
then on only executes it with the ids: the server plans it a few times,
then keeps a generic plan.

Executing it is on the hot path of every poll, so outside a transaction
(Django's autocommit, every poll's case) it goes to libpq itself
(``execute()``): one ``PQexecPrepared`` with the ids as text, the rows
read by the connection's loaders (``_reader()``). psycopg's cursor,
quoting the ids into an ``EXECUTE name(...)`` statement and tracking its
state around it, cost the web process about five times what libpq does
for the same round trip (107 µs against 22 µs), and the server parses that
``EXECUTE`` where the protocol's own binds straight to the statement.
Inside a transaction psycopg's cursor runs it, which begins the
transaction where psycopg would.

Not behind a transaction pooler (``DISABLE_SERVER_SIDE_CURSORS``,
Django's switch for one), which would run the statement on a server
connection that never saw the ``PREPARE``. Should a pooler be there
unannounced, the first execution that finds no statement raises
``NO_SUCH_STATEMENT``, and ``compiled.py`` runs the query unprepared from
then on; and as each statement's name carries a digest of its SQL, a
server connection that kept another version's statement (a deploy behind
the pooler) never runs it for this one.
"""

from __future__ import annotations

import datetime
import hashlib
import re
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from django.db import ProgrammingError
from django.db import connections
from psycopg import abc
from psycopg import pq
from psycopg.adapt import AdaptersMap
from psycopg.adapt import Transformer
from psycopg.types.datetime import TimestamptzLoader

# Postgres's error codes: no prepared statement of that name in this
# session, and one of that name already there.
NO_SUCH_STATEMENT = "26000"
STATEMENT_EXISTS = "42P05"

# A parameter, or a literal percent sign, in the SQL the ORM writes.
PLACEHOLDER = re.compile(r"%%|%s")


@dataclass(frozen=True, slots=True)
class Statement:
    """A prepared statement: its name, and the SQL that prepares and executes it."""

    name: str
    prepare: str  # PREPARE <name> AS <sql>, parameters numbered $1, $2...
    execute: str  # EXECUTE <name>(%s, ...), for psycopg's cursor


# The statements each Postgres connection (psycopg's, which a reconnect
# replaces) has prepared.
PREPARED_ON: weakref.WeakKeyDictionary[Any, set[str]] = weakref.WeakKeyDictionary()
# What reads the rows of each Django connection, for the psycopg connection
# it holds now (a reconnect replaces both): psycopg's Transformer looks up a
# loader per column type once, as a cursor's does, then keeps it.
_READERS: weakref.WeakKeyDictionary[Any, tuple[Any, abc.Transformer]] = weakref.WeakKeyDictionary()


@dataclass(frozen=True, slots=True)
class _Loaders:
    """What psycopg's Transformer reads its loaders from (psycopg.abc.AdaptContext)."""

    adapters: AdaptersMap
    connection: Any


def statement(name: str, sql: str, count: int) -> Statement:
    """The prepared statement ``<name>_<digest of sql>`` for SQL whose only parameters
    are ``count`` ids (the server infers their types)."""
    name = f"{name}_{hashlib.blake2s(sql.encode(), digest_size=4).hexdigest()}"
    numbers = iter(range(1, count + 1))
    body = PLACEHOLDER.sub(lambda m: "%" if m.group() == "%%" else f"${next(numbers)}", sql)
    # No parameters to bind, so the PREPARE is sent as written: percent signs single.
    return Statement(
        name, f"PREPARE {name} AS {body}", f"EXECUTE {name}({', '.join(['%s'] * count)})"
    )


def execute(prepared: Statement, params: Sequence[int], connection: Any) -> list[Any] | None:
    """Run ``prepared`` with ``params`` on libpq, preparing it first if this session has not.

    None when psycopg's cursor must run it instead (``prepare_once()``):
    inside a transaction, or with time zones other than UTC (``USE_TZ =
    False``, a database ``TIME_ZONE``), where Django's own loaders must
    read the datetimes. Raises psycopg's errors, as its cursor would (the
    caller is inside Django's ``wrap_database_errors``).
    """
    raw = connection.connection
    # psycopg's lock, which its cursors take: one statement at a time on a
    # connection (Django shares one between threads only when told to).
    with raw.lock:
        pgconn = raw.pgconn
        if (
            not raw.autocommit
            or pgconn.transaction_status != pq.TransactionStatus.IDLE
            or connection.timezone != datetime.UTC
            or pgconn.parameter_status(b"TimeZone") != b"UTC"
        ):
            return None
        on_this_connection = PREPARED_ON.setdefault(raw, set())
        if prepared.name not in on_this_connection:
            done = pgconn.exec_(prepared.prepare.encode(raw.info.encoding))
            if done.status != pq.ExecStatus.COMMAND_OK and _state(done) != STATEMENT_EXISTS:
                raise _error(done, raw)  # (already there: see prepare_once())
            on_this_connection.add(prepared.name)
        params_text = [b"%d" % value for value in params]
        result = pgconn.exec_prepared(prepared.name.encode(), params_text)
        if result.status != pq.ExecStatus.TUPLES_OK:
            raise _error(result, raw)
        rows = _reader(connection, raw)
        rows.set_pgresult(result)
        return rows.load_rows(0, result.ntuples, tuple)


def _reader(connection: Any, raw: Any) -> abc.Transformer:
    """The connection's loaders, but psycopg's own for ``timestamptz``.

    Django's is Python: it loads the datetime in the session's zone, then
    labels it with Django's (the same, UTC, here). psycopg's is C and
    labels it with the session's: the same datetime, for a fifth of the
    cost (two per row of the poll).
    """
    kept = _READERS.get(connection)
    if kept is not None and kept[0] is raw:
        return kept[1]
    adapters = AdaptersMap(raw.adapters)
    adapters.register_loader("timestamptz", TimestamptzLoader)  # psycopg uses its C version
    reader = Transformer(_Loaders(adapters, raw))
    _READERS[connection] = (raw, reader)
    return reader


def prepare_once(prepared: Statement, cursor: Any, connection: Any) -> str:
    """``PREPARE`` the statement on ``cursor`` unless this session has; returns its ``EXECUTE``."""
    on_this_connection = PREPARED_ON.setdefault(connection.connection, set())
    if prepared.name not in on_this_connection:
        try:
            cursor.execute(prepared.prepare)  # lasts as long as the session, whatever rolls back
        except (ProgrammingError, connection.Database.ProgrammingError) as error:
            # Already there (its name is its SQL's): a pooler's server
            # connection that another client prepared it on.
            if sqlstate(error) != STATEMENT_EXISTS or connection.in_atomic_block:
                raise
        on_this_connection.add(prepared.name)
    return prepared.execute


def sqlstate(error: Exception) -> str | None:
    """Postgres's code for ``error``: psycopg's, or the one behind Django's."""
    code: str | None = getattr(error, "sqlstate", None) or getattr(
        error.__cause__, "sqlstate", None
    )
    return code


def _state(result: pq.abc.PGresult) -> str:
    return (result.error_field(pq.DiagnosticField.SQLSTATE) or b"").decode()


def _error(result: pq.abc.PGresult, raw: Any) -> psycopg.Error:
    """The error psycopg's cursor would raise for ``result`` on connection ``raw``.

    A connection lost on the way has no SQL state: psycopg calls that an
    OperationalError (which ``compiled.py`` retries on a new connection).
    """
    encoding = raw.info.encoding  # here, not on every poll: ConnectionInfo is made per read
    if raw.pgconn.status == pq.ConnStatus.BAD:
        return psycopg.OperationalError(result.get_error_message(encoding))
    return psycopg.errors.error_from_result(result, encoding=encoding)


def inline_constants(
    using: str, sql: str, params: Sequence[Any], slots: tuple[tuple[int, int], ...]
) -> tuple[str, list[Any], tuple[tuple[int, int], ...]]:
    """Write every parameter but the ids into the SQL, as literals quoted by psycopg.

    psycopg (client-side binding, Django's default) caches how it splits a
    query only for queries of at most 50 parameters; past that it parses the
    SQL again on every call, which cost the poll about 1 ms, more than the
    database took to run it. The constants (names, states, patterns) never
    change, so they are quoted once here; only the ids stay parameters.
    """
    by_position = dict(slots)
    # compose_sql(): the Postgres backend's quoting, as psycopg itself would bind.
    quote = connections[using].ops.compose_sql  # type: ignore[attr-defined]  # Postgres only
    literals: dict[int, str] = {
        position: quote("%s", [value])
        for position, value in enumerate(params)
        if position not in by_position
    }
    kept: list[Any] = []
    new_slots: list[tuple[int, int]] = []
    positions = iter(range(len(params)))

    def replace(match: re.Match[str]) -> str:
        if match.group() == "%%":
            return "%%"
        position = next(positions)
        if position in by_position:
            new_slots.append((len(kept), by_position[position]))
            kept.append(params[position])
            return "%s"
        return literals[position].replace("%", "%%")

    inlined = PLACEHOLDER.sub(replace, sql)
    if next(positions, None) is not None:
        raise RuntimeError(f"CompiledQuery: fewer placeholders than parameters in {sql!r}")
    return inlined, kept, tuple(new_slots)
