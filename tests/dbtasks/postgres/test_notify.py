"""enqueue() on Postgres: the INSERT and its NOTIFY in one statement, delivered only at commit."""

from __future__ import annotations

import psycopg
import pytest
from django.db import connection
from django.db import transaction
from django.test.utils import CaptureQueriesContext

from dbtasks.sql.notify import CHANNEL
from dbtasks.sql.notify import connection_params
from tests import tasks


@pytest.fixture
def listener(transactional_db):
    with psycopg.connect(**connection_params("default"), autocommit=True) as listening:
        listening.execute(f"LISTEN {CHANNEL}")
        yield listening


def received(listening: psycopg.Connection) -> list[str]:
    return [notify.payload for notify in listening.notifies(timeout=0.5, stop_after=10)]


def test_an_enqueue_is_one_statement_and_wakes_listeners(listener):
    with CaptureQueriesContext(connection) as queries:
        result = tasks.noop.using(queue_name="low_priority").enqueue()

    assert len(queries) == 1, [query["sql"] for query in queries]
    assert "pg_notify" in queries[0]["sql"]
    assert result.id.isdigit()
    assert received(listener) == ["low_priority"]


def enqueue_then_fail() -> None:
    with transaction.atomic():
        tasks.noop.enqueue()
        raise RuntimeError("the view failed after enqueueing")


def test_a_rolled_back_enqueue_wakes_nobody(listener):
    with pytest.raises(RuntimeError):
        enqueue_then_fail()

    assert received(listener) == []


def test_the_notification_waits_for_the_commit(listener):
    with transaction.atomic():
        tasks.noop.enqueue()
        assert received(listener) == []  # not before the commit
    assert received(listener) == ["default"]
