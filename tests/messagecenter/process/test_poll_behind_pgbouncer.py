"""The live poll through PgBouncer in transaction mode that nobody announced.

Without ``DATABASE_POOLED`` the poll prepares its statement, and a
transaction pooler hands each statement any of its server connections: a
``PREPARE`` on one, the ``EXECUTE`` on another (messagecenter/compiled.py).
Four threads of one process poll through a pooler with two server
connections; every answer must be the one the server gives directly.

And the memo's listener (messagecenter/live_listener.py) LISTENs in one server
process but may be handed another: it gives up, and every poll queries.
"""

from __future__ import annotations

import psycopg
import pytest
from django.db import connection

from messagecenter import live
from messagecenter import live_listener
from messagecenter import live_memo
from messagecenter.models import Notification
from messagecenter.sending import send
from tests.dbtasks.postgres.private import app_env
from tests.dbtasks.postgres.private import pgbouncer
from tests.live import python
from tests.live import wait_until

pytestmark = [pytest.mark.process, pytest.mark.django_db(transaction=True)]

THREADS = 4
POLLS = 100

POLLING = """
import sys, threading
import django
django.setup()
from django.db import connections
from messagecenter import live

owner, pk = int(sys.argv[1]), int(sys.argv[2])
answers, errors = [], []

def poll():
    try:
        for _ in range({polls}):
            answers.append(live.progress(owner_id=owner, pks=[pk]).rows[0][1])
    except Exception as error:  # reported below, and the test fails on it
        errors.append(repr(error))
    finally:
        connections.close_all()

threads = [threading.Thread(target=poll) for _ in range({threads})]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
print("errors:", errors)
print("answers:", sorted(set(answers)), len(answers))
"""


def test_every_poll_is_answered_right_through_an_unannounced_pooler(alice):
    if connection.vendor != "postgresql":
        pytest.skip("PgBouncer is a Postgres pooler")
    notification = Notification.objects.create(owner=alice, message="hello")
    send(notification)
    ((_, expected, _),) = live.progress(owner_id=alice.pk, pks=[notification.pk]).rows

    with pgbouncer(int(connection.settings_dict["PORT"] or 5432), pool_size=2) as pooler:
        url = pooler.url(connection.settings_dict["NAME"])
        script = POLLING.format(polls=POLLS, threads=THREADS)
        done = python("-c", script, str(alice.pk), str(notification.pk), env=app_env(url))

    assert done.returncode == 0, done.stderr[-3000:]
    assert "errors: []" in done.stdout, done.stdout[-3000:]
    assert f"answers: [{expected!r}] {THREADS * POLLS}" in done.stdout, done.stdout


def test_the_memo_gives_up_behind_an_unannounced_pooler(caplog):
    if connection.vendor != "postgresql":
        pytest.skip("PgBouncer is a Postgres pooler")
    memo = live_memo.Memo()
    with pgbouncer(int(connection.settings_dict["PORT"] or 5432), pool_size=2) as pooler:
        url = pooler.url(connection.settings_dict["NAME"])
        listener = live_listener.Listener(memo, {"conninfo": url}).start()
        held = [psycopg.connect(url) for _ in range(2)]  # each in a transaction: it holds a server
        try:
            wait_until(memo.reading, timeout=10, what="the listener to LISTEN")
            pids = [server_process(client) for client in held]
            assert listener.session in pids
            # Hold the listener's server process, give back the other: its next
            # statement runs there.
            for client, pid in zip(held, pids, strict=True):
                if pid != listener.session:
                    client.rollback()
            wait_until(
                lambda: not listener.thread.is_alive(), timeout=10, what="the listener to give up"
            )
        finally:
            for client in held:
                client.close()
            listener.stop()
    assert memo.reading() is None
    assert "not a session of its own" in caplog.text


def server_process(client: psycopg.Connection) -> int:
    row = client.execute("SELECT pg_backend_pid()").fetchone()
    assert row is not None
    return int(row[0])
