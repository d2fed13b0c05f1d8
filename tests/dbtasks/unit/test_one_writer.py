"""``one_writer()``: on SQLite, one thread of a process at a time writes dbtasks' rows."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from dbtasks.sql import transactions
from dbtasks.sql.transactions import one_writer


def try_from_another_thread(lock: threading.RLock) -> bool:
    """Whether another thread could take ``lock`` at once (and gave it back)."""
    taken: list[bool] = []

    def attempt() -> None:
        got = lock.acquire(blocking=False)
        if got:
            lock.release()
        taken.append(got)

    thread = threading.Thread(target=attempt)
    thread.start()
    thread.join()
    return taken == [True]


def test_other_threads_wait_while_one_writes_on_sqlite():
    if connection.vendor != "sqlite":
        pytest.skip("SQLite: one writer per database")
    lock = transactions._writer_lock("default")
    assert lock is not None
    assert try_from_another_thread(lock)
    with one_writer("default"):
        assert not try_from_another_thread(lock)
        with one_writer("default"):  # a close inside a claim's turn: the same thread
            assert not try_from_another_thread(lock)
        assert not try_from_another_thread(lock)
    assert try_from_another_thread(lock)


def test_nothing_to_take_on_postgres():
    if connection.vendor != "postgresql":
        pytest.skip("Postgres locks rows, not the database")
    assert transactions._writer_lock("default") is None
    with one_writer("default"), one_writer("default"):
        pass


@pytest.mark.django_db  # the test runs inside a transaction
def test_not_taken_inside_a_transaction():
    """Lost-worker recovery closes attempts inside its transaction: taking turns
    there would wait on a thread that waits for this transaction's lock."""
    if connection.vendor != "sqlite":
        pytest.skip("SQLite: one writer per database")
    assert connection.in_atomic_block
    assert transactions._writer_lock("default") is None
    held = threading.Event()
    done = threading.Event()

    def hold() -> None:  # another thread takes its turn outside any transaction
        lock = transactions._writer_lock("default")
        assert lock is not None
        with lock:
            held.set()
            done.wait(timeout=60)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert held.wait(timeout=60)
        with one_writer("default"):  # returns at once: no turn taken here
            pass
    finally:
        done.set()
        holder.join()
