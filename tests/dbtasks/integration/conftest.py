"""Fixtures shared by the dbtasks integration tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from dbtasks.worker import Worker
from tests.dbtasks.helpers import Running


@pytest.fixture
def threaded_worker(transactional_db: None) -> Iterator[Worker]:
    """A worker with two task threads, running in a thread of this process; stopped after."""
    running = Running(threads=2)
    yield running.worker
    running.worker.request_stop()
    running.worker.request_stop()  # the second request abandons what still runs
    running.join(timeout=30)
