"""A query the ORM compiles once per shape, then only runs: the live poll's hot path.

Turning a queryset with subqueries and CASE expressions into SQL costs the
ORM several times what the database then takes to run it: for the poll's
one query, about 3 ms of Python against well under 1 ms of SQL. The poll
asks the same question every time with other ids, so ``CompiledQuery``
compiles it once for each number of ids, with stand-in values that no real
id can take, remembers where those land in the parameters, and from then
on only swaps in the real ones. The rows still go through the ORM's own
converters (datetimes, booleans), so they read as the queryset's would.

On Postgres the server's share shrinks too: the statement is prepared
once per session and from then on only executed, on libpq itself outside a
transaction (``prepared.py``, which also says what happens behind a
transaction pooler).

It skips Django's per-request ping of the connection
(``CONN_HEALTH_CHECKS``), a round trip of its own: a read can afford to be
optimistic, and is run again on a new connection if the kept one had died.

And it runs the statement on the driver's own cursor (on Postgres, outside
a transaction, on libpq), with the checks Django's cursor makes (thread,
broken transaction, errors as Django's), in the driver's own placeholders:
on SQLite Django's cursor wrapper and its rewriting of each ``%s`` into
``?`` cost twice what SQLite takes to run the poll's query. When Django
records queries (``DEBUG``, a test counting them) or something wraps them
(``connection.execute_wrapper()``), it goes through Django's cursor
instead, so that they see it. (Instrumentation that patches Django's
cursor class, or psycopg's, rather than using ``execute_wrapper()`` does
not see this one query.)
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import replace
from typing import Any

from django.db import InterfaceError
from django.db import OperationalError
from django.db import ProgrammingError
from django.db import connections
from django.db.models import QuerySet
from django.db.models.sql import Query

from messagecenter import prepared as postgres
from messagecenter.prepared import PLACEHOLDER

logger = logging.getLogger(__name__)

# Stand-ins for the ids: negative, far below any id a database hands out.
_FIRST_STAND_IN = -(2**62)


@dataclass(frozen=True, slots=True)
class _Compiled:
    query: Query
    sql: str
    params: tuple[Any, ...]
    slots: tuple[tuple[int, int], ...]  # (position in params, index of the value)
    names: tuple[str, ...]  # the columns, in the order the SQL selects them
    converters: dict[int, Any]  # the ORM's converters by column (datetimes, booleans)
    # The SQL in the driver's own placeholders, for its own cursor (_execute).
    direct_sql: str
    # Postgres, not behind a pooler: the prepared statement.
    prepared: postgres.Statement | None = None


class CompiledQuery:
    """``build(values)`` as SQL compiled once per ``len(values)`` and database.

    ``build`` takes a list of integers and returns a queryset that uses each
    of them once as a parameter (``filter(owner_id=values[0],
    pk__in=values[1:])``, say) and selects with ``values()``.
    ``rows(values, using=...)`` runs it with the real values and returns
    each row as a dict by column name.
    """

    def __init__(self, build: Callable[[list[int]], QuerySet[Any, Any]], *, name: str) -> None:
        """``name``: a name for the query, unique in the project (its prepared statements')."""
        self.build = build
        self.name = name
        self._compiled: dict[tuple[str, int], _Compiled] = {}

    def rows(self, values: Sequence[int], *, using: str) -> list[dict[str, Any]]:
        key = (using, len(values))
        compiled = self._compiled.get(key)
        if compiled is None:
            compiled = self._compiled[key] = self._compile(len(values), using)
        params = list(compiled.params)
        for position, index in compiled.slots:
            params[position] = values[index]
        connection = connections[using]
        optimistic = _skip_health_check(connection)
        try:
            found = _execute(compiled, params, connection)
        except (InterfaceError, OperationalError):
            # Retried only if Django's ping was skipped and the connection is
            # in fact dead (the server closed it while it sat idle).
            if not optimistic or connection.is_usable():
                raise
            connection.close()
            found = _execute(compiled, params, connection)
        except ProgrammingError as error:
            if postgres.sqlstate(error) != postgres.NO_SUCH_STATEMENT or connection.in_atomic_block:
                raise
            compiled = self._unprepared(key, compiled)
            found = _execute(compiled, params, connection)
        if compiled.converters:
            compiler = compiled.query.get_compiler(connection=connection)
            found = list(compiler.apply_converters(found, compiled.converters))
        return [dict(zip(compiled.names, row, strict=True)) for row in found]

    def _unprepared(self, key: tuple[str, int], compiled: _Compiled) -> _Compiled:
        """The statement vanished from the session it was prepared in: run it unprepared.

        What a transaction pooler does (PgBouncer), which hands each
        statement any server connection; or a ``DEALLOCATE``.
        """
        logger.warning(
            "The prepared statement %s was not found on its connection: behind a "
            "transaction pooler (set DATABASE_POOLED=1, or DISABLE_SERVER_SIDE_CURSORS "
            "in DATABASES)? Running the query unprepared from now on.",
            compiled.prepared.name if compiled.prepared else "?",
        )
        unprepared = self._compiled[key] = replace(compiled, prepared=None)
        return unprepared

    def _compile(self, count: int, using: str) -> _Compiled:
        stand_ins = [_FIRST_STAND_IN + index for index in range(count)]
        query = self.build(stand_ins).query
        compiler = query.get_compiler(using=using)
        sql, params = compiler.as_sql()
        where = {value: index for index, value in enumerate(stand_ins)}
        slots = tuple(
            (position, where[param])
            for position, param in enumerate(params)
            if type(param) is int and param in where
        )
        if sorted(index for _, index in slots) != list(range(count)):
            raise RuntimeError(
                f"CompiledQuery: each value must be a parameter once, got {sql!r} {params!r}"
            )
        selected = compiler.select[: compiler.col_count]
        # values() names each column (its alias), in the order the SQL has them.
        names = tuple(alias for _, _, alias in selected)
        if not all(names):
            raise RuntimeError(f"CompiledQuery: select with values(), got {sql!r}")
        converters = compiler.get_converters([expression for expression, _, _ in selected])
        prepared = None
        direct_sql = sql
        connection = connections[using]
        if connection.vendor == "postgresql":
            sql, params, slots = postgres.inline_constants(using, sql, params, slots)
            direct_sql = sql  # psycopg's placeholders are Django's
            if not connection.settings_dict.get("DISABLE_SERVER_SIDE_CURSORS"):
                prepared = postgres.statement(f"{self.name}_{count}", sql, len(params))
        elif connection.vendor == "sqlite":
            direct_sql = _qmark(sql)
        return _Compiled(query, sql, tuple(params), slots, names, converters, direct_sql, prepared)


def _execute(compiled: _Compiled, params: list[Any], connection: Any) -> list[Any]:
    """Run the compiled statement with ``params`` (preparing it first, once per session)."""
    if connection.queries_logged or connection.execute_wrappers:
        return _execute_seen(compiled, params, connection)
    # What connection.cursor() and cursor.execute() check, without their wrappers.
    connection.close_if_health_check_failed()
    connection.ensure_connection()
    connection.validate_thread_sharing()
    connection.validate_no_broken_transaction()
    with connection.wrap_database_errors:
        if compiled.prepared:
            ran = postgres.execute(compiled.prepared, params, connection)
            if ran is not None:
                return ran
        # SQLite: the plain sqlite3 cursor, which takes "?" (Django's rewrites
        # "%s" on every call); Postgres: the backend's (time zone loader and all).
        sqlite = connection.vendor == "sqlite"
        cursor = connection.connection.cursor() if sqlite else connection.create_cursor()
        try:
            sql = compiled.direct_sql
            if compiled.prepared:
                sql = postgres.prepare_once(compiled.prepared, cursor, connection)
            cursor.execute(sql, params)
            found: list[Any] = cursor.fetchall()
        finally:
            cursor.close()
    return found


def _execute_seen(compiled: _Compiled, params: list[Any], connection: Any) -> list[Any]:
    """``_execute()`` through Django's cursor, where debug logging and wrappers see it."""
    with connection.cursor() as cursor:
        sql = compiled.sql
        if compiled.prepared:
            sql = postgres.prepare_once(compiled.prepared, cursor, connection)
        cursor.execute(sql, params)
        found: list[Any] = cursor.fetchall()
    return found


def _skip_health_check(connection: Any) -> bool:
    """Skip Django's ping of a kept connection for this read; True if one was due.

    With ``CONN_HEALTH_CHECKS`` Django asks the server ``SELECT 1`` before a
    request's first query on a connection it kept: on Postgres a round trip
    as long as the poll's own query. A read can be optimistic instead: run
    it, and only if it fails on a connection that turns out dead, connect
    again and ask once more (``rows()``). Not inside a transaction, where
    retrying on a new connection would leave the transaction behind.
    """
    if (
        connection.connection is None
        or not connection.health_check_enabled
        or connection.health_check_done
        or connection.in_atomic_block
    ):
        return False
    connection.health_check_done = True
    return True


def _qmark(sql: str) -> str:
    """The SQL with sqlite3's own placeholders: ``?`` for ``%s``, ``%`` for ``%%``."""
    return PLACEHOLDER.sub(lambda m: "%" if m.group() == "%%" else "?", sql)
