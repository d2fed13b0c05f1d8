"""The private servers' ports (``tests/pg_cluster.py``): never the same one twice at once.

The private clusters and PgBouncers of ``tests/dbtasks/postgres/private.py``
take a port of a fixed range; two test runs on one machine (two checkouts,
or make test beside make test-postgres) could otherwise both find a port
free and start their servers on it before either listened.
"""

from __future__ import annotations

import socket

import pytest

from tests.live import free_port
from tests.pg_cluster import reserved_port


def test_a_reserved_port_is_not_given_again_until_released():
    first = free_port()
    ports = range(first, first + 1)
    with reserved_port(ports, "a test") as port:
        assert port == first
        # Another holder (a lock on a file handle of its own, as another
        # process would have) finds none left.
        taken_twice = pytest.raises(pytest.skip.Exception, match="no free port for a test")
        with taken_twice, reserved_port(ports, "a test"):
            pass
    with reserved_port(ports, "a test") as again:
        assert again == first


def test_a_port_something_listens_on_is_passed_over():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        taken = listener.getsockname()[1]
        passed_over = pytest.raises(pytest.skip.Exception, match="no free port")
        with passed_over, reserved_port(range(taken, taken + 1), "a test"):
            pass
