"""How the worker reacts to SIGTERM/SIGINT, without a database (the real processes are in
tests/dbtasks/process/test_shutdown.py)."""

from __future__ import annotations

import os
import signal
import threading

import pytest

from dbtasks.worker import Worker
from dbtasks.worker import WorkerOptions
from tests.dbtasks.helpers import default_backend
from tests.live import patience


@pytest.fixture
def worker():
    """A Worker whose signal handlers are installed (in this, the main thread)."""
    worker = Worker(default_backend(), WorkerOptions())
    restore = worker._install_signal_handlers()
    yield worker
    restore()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_first_signal_stops_claiming_second_abandons(worker, signum):
    os.kill(os.getpid(), signum)
    worker.wait(5)  # returns as soon as the signal is acted on

    assert worker.stopping.is_set()
    assert not worker.abandon.is_set()

    os.kill(os.getpid(), signum)
    worker.wait(5)

    assert worker.abandon.is_set()


def test_the_handler_takes_no_lock(worker):
    # Python runs a handler in the main thread between two bytecodes, maybe
    # while that thread is inside Event.clear() or Event.wait() holding the
    # event's non-reentrant lock. Calling Event.set() from the handler then
    # deadlocks the worker; the handler must only take note of the signal.
    handler = signal.getsignal(signal.SIGTERM)
    assert callable(handler)

    def handle_while_holding_the_wake_lock():
        with worker.wake._cond:  # what Event.clear() holds for a moment
            handler(signal.SIGTERM, None)

    thread = threading.Thread(target=handle_while_holding_the_wake_lock, daemon=True)
    thread.start()
    thread.join(timeout=patience(10))

    assert not thread.is_alive(), "the signal handler blocked on the wake event's lock"
    assert worker._check_signals() is True
    assert worker.stopping.is_set()


def test_handlers_are_restored():
    before = signal.getsignal(signal.SIGTERM)
    worker = Worker(default_backend(), WorkerOptions())

    restore = worker._install_signal_handlers()
    assert signal.getsignal(signal.SIGTERM) is not before
    restore()

    assert signal.getsignal(signal.SIGTERM) is before
