"""CompiledQuery answers as the queryset it was compiled from, with other ids swapped in."""

from __future__ import annotations

import logging
import re
import zoneinfo
from datetime import timedelta

import pytest
from django.db import OperationalError
from django.db import connection
from django.db import connections
from django.db import transaction
from django.test.utils import CaptureQueriesContext

from messagecenter import prepared as prepared_module
from messagecenter.compiled import CompiledQuery
from messagecenter.models import Notification

pytestmark = pytest.mark.django_db


def build(values: list[int]):
    # Constants of every kind beside the ids: text with a percent sign and
    # quotes, a pattern, a number, so that inlining them (Postgres) is tested.
    return (
        Notification.objects.filter(owner_id=values[0], pk__in=values[1:])
        .exclude(message="50% 'off'")
        .filter(message__regex=r"\A[a-z0-9 %']+\Z", priority__gte=1)
        .order_by("pk")
        .values("pk", "message", "created_at")
    )


def test_rows_are_the_querysets_for_any_ids(django_user_model):
    alice = django_user_model.objects.create_user("alice")
    bob = django_user_model.objects.create_user("bob")
    mine = [
        Notification.objects.create(owner=alice, message=text)
        for text in ("hello", "50% 'off'", "100% 'on'", "Capital")
    ]
    theirs = Notification.objects.create(owner=bob, message="hello")
    compiled = CompiledQuery(build, name="test_compiled_query")

    for values in (
        [alice.pk, *(n.pk for n in mine)],
        [alice.pk, mine[2].pk, theirs.pk],
        [bob.pk, theirs.pk, mine[0].pk],
    ):
        rows = compiled.rows(values, using="default")
        assert rows == list(build(values)), values
    assert [
        row["message"] for row in compiled.rows([alice.pk, *(n.pk for n in mine)], using="default")
    ] == ["hello", "100% 'on'"]


def test_only_the_ids_are_parameters_on_postgres():
    if connection.vendor != "postgresql":
        pytest.skip("client-side binding's parse cache is psycopg's (Postgres)")
    compiled = CompiledQuery(build, name="test_compiled_query")
    compiled.rows([1, 2, 3], using="default")
    ((_, entry),) = compiled._compiled.items()
    assert len(entry.params) == 3  # psycopg caches a split query of at most 50


def test_postgres_prepares_it_once_per_connection_then_only_executes(django_user_model):
    if connection.vendor != "postgresql":
        pytest.skip("prepared statements: Postgres")
    alice = django_user_model.objects.create_user("alice")
    mine = [Notification.objects.create(owner=alice, message=t) for t in ("hello", "50% 'off'")]
    compiled = CompiledQuery(build, name="test_compiled_query_prepared")
    values = [alice.pk, *(n.pk for n in mine)]

    with CaptureQueriesContext(connection) as first:
        rows = compiled.rows(values, using="default")
    with CaptureQueriesContext(connection) as then:
        again = compiled.rows(values, using="default")

    assert rows == again == list(build(values))
    # A statement per number of values, named for its SQL too.
    named = re.match(r"PREPARE (test_compiled_query_prepared_3_[0-9a-f]{8}) ", first[0]["sql"])
    assert named is not None, first[0]["sql"][:100]
    name = named[1]
    assert [query["sql"][: len(name) + 9] for query in first] == [
        f"PREPARE {name} ",
        f"EXECUTE {name}(",
    ]
    assert [query["sql"][: len(name) + 9] for query in then] == [f"EXECUTE {name}("]
    with connection.cursor() as cursor:
        cursor.execute("SELECT name FROM pg_prepared_statements")
        assert (name,) in cursor.fetchall()


def test_not_behind_a_transaction_pooler(django_user_model, monkeypatch):
    if connection.vendor != "postgresql":
        pytest.skip("prepared statements: Postgres")
    alice = django_user_model.objects.create_user("alice")
    compiled = CompiledQuery(build, name="test_compiled_query_pooled")
    monkeypatch.setitem(connection.settings_dict, "DISABLE_SERVER_SIDE_CURSORS", True)

    with CaptureQueriesContext(connection) as queries:
        assert compiled.rows([alice.pk, 1], using="default") == []

    assert [q["sql"].split(" ")[0] for q in queries] == ["SELECT"]


@pytest.mark.django_db(transaction=True)
def test_no_ping_before_it_and_a_connection_that_died_idle_is_replaced(
    django_user_model, monkeypatch
):
    """Django's per-request health check is skipped; a dead kept connection is retried once."""
    if connection.vendor != "postgresql":
        pytest.skip("a server that closes a kept connection: Postgres")
    alice = django_user_model.objects.create_user("alice")
    note = Notification.objects.create(owner=alice, message="hello")
    compiled = CompiledQuery(build, name="test_compiled_query_optimistic")
    values = [alice.pk, note.pk]
    expected = list(build(values))
    assert compiled.rows(values, using="default") == expected  # compiled (that may query)
    default = connections["default"]
    pings = []
    is_usable = type(default).is_usable

    def counted(self):
        pings.append(self)
        return is_usable(self)

    monkeypatch.setattr(type(default), "is_usable", counted)
    monkeypatch.setattr(default, "health_check_enabled", True)

    default.close_if_unusable_or_obsolete()  # what each request starts with
    assert compiled.rows(values, using="default") == expected
    assert pings == []  # no SELECT 1 before the read

    # Between requests the server ends the kept connection's session.
    pid = default.connection.info.backend_pid
    terminate(pid)

    default.close_if_unusable_or_obsolete()
    assert compiled.rows(values, using="default") == expected
    assert pings == [default]  # asked only once the read had failed
    assert default.connection.info.backend_pid != pid


@pytest.mark.django_db(transaction=True)
def test_no_retry_once_the_request_has_used_the_connection(django_user_model, monkeypatch):
    """A connection that failed after Django checked it this request: the error is raised."""
    if connection.vendor != "postgresql":
        pytest.skip("a server that closes a kept connection: Postgres")
    alice = django_user_model.objects.create_user("alice")
    compiled = CompiledQuery(build, name="test_compiled_query_checked")
    default = connections["default"]
    monkeypatch.setattr(default, "health_check_enabled", True)
    default.close_if_unusable_or_obsolete()
    assert Notification.objects.filter(owner=alice).count() == 0  # checked, then used

    terminate(default.connection.info.backend_pid)
    try:
        with pytest.raises(OperationalError):
            compiled.rows([alice.pk, 1], using="default")
    finally:
        default.close()


def terminate(pid: int) -> None:
    """End backend ``pid``'s session from another connection, and wait until it is gone."""
    killer = connections.create_connection("default")
    try:
        with killer.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
            wait_until_gone(cursor, pid)
    finally:
        killer.close()


def wait_until_gone(cursor, pid: int) -> None:
    """Until the terminated backend has left pg_stat_activity (its exit is asynchronous)."""
    for _ in range(10_000):
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", [pid])
        if cursor.fetchone() == (0,):
            return
        cursor.execute("SELECT pg_sleep(0.01)")
    raise AssertionError(f"backend {pid} still there")


def test_it_runs_on_the_drivers_cursor_unless_django_watches(django_user_model, monkeypatch):
    """Not through Django's cursor wrapper, except where a wrapper or query log must see it."""
    alice = django_user_model.objects.create_user("alice")
    note = Notification.objects.create(owner=alice, message="hello")
    compiled = CompiledQuery(build, name="test_compiled_query_direct")
    values = [alice.pk, note.pk]
    expected = list(build(values))
    compiled.rows(values, using="default")  # compiled, and prepared on Postgres
    seen = []

    def spy(execute, sql, params, many, context):
        seen.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(spy):
        assert compiled.rows(values, using="default") == expected
    assert len(seen) == 1

    def no_django_cursor(*args, **kwargs):
        raise AssertionError("went through Django's cursor")

    monkeypatch.setattr(connection, "cursor", no_django_cursor)
    assert compiled.rows(values, using="default") == expected


def prepared_on_postgres(django_user_model, name: str) -> tuple[CompiledQuery, list[int], list]:
    """A query run once (so prepared on this connection), its values and its rows."""
    if connection.vendor != "postgresql":
        pytest.skip("prepared statements: Postgres")
    alice = django_user_model.objects.create_user("alice")
    note = Notification.objects.create(owner=alice, message="hello")
    compiled = CompiledQuery(build, name=name)
    values = [alice.pk, note.pk]
    expected = list(build(values))
    assert compiled.rows(values, using="default") == expected
    return compiled, values, expected


@pytest.mark.django_db(transaction=True)
def test_a_statement_gone_from_its_session_runs_unprepared_from_then_on(django_user_model, caplog):
    """What a transaction pooler nobody announced does: the EXECUTE lands elsewhere."""
    compiled, values, expected = prepared_on_postgres(django_user_model, "test_vanished")
    with connection.cursor() as cursor:
        cursor.execute("DEALLOCATE ALL")

    with caplog.at_level(logging.WARNING, logger="messagecenter.compiled"):
        assert compiled.rows(values, using="default") == expected
    assert "DATABASE_POOLED" in caplog.text

    with CaptureQueriesContext(connection) as queries:
        assert compiled.rows(values, using="default") == expected
    assert [q["sql"].split(" ")[0] for q in queries] == ["SELECT"]


@pytest.mark.django_db(transaction=True)
def test_a_statement_the_session_has_already_is_used(django_user_model):
    """A pooler's server connection may hold it already, prepared for another client."""
    compiled, values, expected = prepared_on_postgres(django_user_model, "test_there")
    prepared_module.PREPARED_ON.pop(connection.connection)  # as if another client had
    assert compiled.rows(values, using="default") == expected  # on the driver's cursor

    prepared_module.PREPARED_ON.pop(connection.connection)
    with CaptureQueriesContext(connection) as queries:  # on Django's
        assert compiled.rows(values, using="default") == expected
    assert [q["sql"].split(" ")[0] for q in queries] == ["PREPARE", "EXECUTE"]


@pytest.mark.django_db(transaction=True)
def test_two_versions_of_a_query_never_run_each_others_statement(django_user_model):
    """Same name, other SQL (a deploy behind a pooler): each statement is named for its SQL."""
    if connection.vendor != "postgresql":
        pytest.skip("prepared statements: Postgres")
    alice = django_user_model.objects.create_user("alice")
    notes = [Notification.objects.create(owner=alice, message=t) for t in ("hello", "world")]
    values = [alice.pk, *(n.pk for n in notes)]

    def build_newer(values: list[int]):
        return build(values).filter(message="world")

    older = CompiledQuery(build, name="test_compiled_query_versions")
    newer = CompiledQuery(build_newer, name="test_compiled_query_versions")

    assert older.rows(values, using="default") == list(build(values))
    assert newer.rows(values, using="default") == list(build_newer(values))
    assert len(list(build(values))) == 2


@pytest.mark.django_db(transaction=True)
def test_postgres_executes_it_on_libpq_unless_a_transaction_is_open(django_user_model, monkeypatch):
    """Autocommit (every poll): PQexecPrepared, rows read by the connection's loaders; inside
    a transaction, psycopg's cursor, which begins it."""
    compiled, values, expected = prepared_on_postgres(django_user_model, "test_libpq")
    default = connections["default"]
    cursors = []
    create_cursor = type(default).create_cursor

    def counted(self, *args, **kwargs):
        cursors.append(self)
        return create_cursor(self, *args, **kwargs)

    monkeypatch.setattr(type(default), "create_cursor", counted)

    rows = compiled.rows(values, using="default")
    assert rows == expected
    assert rows[0]["created_at"].utcoffset() == timedelta(0)
    assert cursors == []
    with transaction.atomic():
        assert compiled.rows(values, using="default") == expected
    assert cursors == [default]


@pytest.mark.django_db(transaction=True)
def test_a_time_zone_set_after_connecting_is_kept(django_user_model, monkeypatch):
    """A database TIME_ZONE changed on an open connection (a test's settings, say): Django sets
    the session's and loads its cursors' datetimes in it (create_cursor()), while the
    connection's own loaders keep the zone it connected with: libpq steps aside."""
    compiled, values, expected = prepared_on_postgres(django_user_model, "test_zone")
    default = connections["default"]
    paris = zoneinfo.ZoneInfo("Europe/Paris")
    monkeypatch.setitem(default.settings_dict, "TIME_ZONE", "Europe/Paris")
    forget_time_zone(default)
    try:
        default.ensure_timezone()  # SET TIME ZONE on the open connection, as Django does

        rows = compiled.rows(values, using="default")
        assert rows == expected
        assert rows[0]["created_at"].tzinfo == paris
    finally:
        default.close()
        forget_time_zone(default)


def forget_time_zone(connection) -> None:
    """Drop the connection's cached zone (cached properties), to be read from settings again."""
    for cached in ("timezone", "timezone_name"):
        connection.__dict__.pop(cached, None)


@pytest.mark.django_db(transaction=True)
def test_naive_datetimes_without_use_tz(django_user_model, settings):
    """USE_TZ = False: Django's loaders read naive datetimes; libpq's reader would not."""
    compiled, values, _ = prepared_on_postgres(django_user_model, "test_naive")
    settings.USE_TZ = False  # Django resets the connection's zone and the session's

    rows = compiled.rows(values, using="default")
    assert rows == list(build(values))
    assert rows[0]["created_at"].tzinfo is None
