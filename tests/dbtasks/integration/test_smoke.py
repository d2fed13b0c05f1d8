"""The shortest path through dbtasks: enqueue, work, read the result."""

from __future__ import annotations

from tests import tasks
from tests.conftest import run_worker


def test_enqueue_run_and_read_back(transactional_db):
    result = tasks.echo.enqueue(1, "é", a=2)
    assert result.status == "READY"

    run_worker()

    result.refresh()
    assert result.status == "SUCCESSFUL"
    assert result.return_value == {"args": [1, "é"], "kwargs": {"a": 2}}
