"""The worker as a real process: ids, and results read back from another process."""

from __future__ import annotations

import json
import re
import signal

import pytest

from dbtasks.compat import TaskResultStatus
from dbtasks.models import DBWorker
from tests import tasks
from tests.live import STARTUP_TIMEOUT
from tests.live import wait_until
from tests.workers import run_manage

pytestmark = pytest.mark.process


def test_worker_ids_are_unique_per_process(start_worker):
    first = start_worker("--id", "same")
    second = start_worker("--id", "same")

    ids = {first.wait_registered().worker_id, second.wait_registered().worker_id}

    assert len(ids) == 2
    for process in (first, second):
        (worker_id,) = [i for i in ids if f":{process.pid}:" in i]
        assert re.fullmatch(rf"same:{process.pid}:[0-9a-f]{{8}}", worker_id)
        process.send(signal.SIGTERM)
        assert process.wait() == 0
    assert not DBWorker.objects.exists()


def test_a_task_enqueued_here_runs_there(start_worker):
    result = tasks.echo.enqueue("from the test", n=1)
    worker = start_worker()

    wait_until(
        lambda: tasks.echo.get_result(result.id).is_finished,
        timeout=STARTUP_TIMEOUT,
        what="the task to run",
    )

    result.refresh()
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.return_value == {"args": ["from the test"], "kwargs": {"n": 1}}
    assert result.worker_ids[0].split(":")[1] == str(worker.pid)


def test_get_result_works_from_another_process(transactional_db):
    done = tasks.echo.enqueue("done")
    script = (
        "import json; from tests import tasks; from dbtasks.compat import TaskResultDoesNotExist\n"
        f"r = tasks.echo.get_result({done.id!r})\n"
        "out = {'status': r.status, 'args': r.args, 'attempts': r.attempts}\n"
        "try:\n    tasks.echo.get_result('12x')\nexcept TaskResultDoesNotExist:\n"
        "    out['malformed'] = 'TaskResultDoesNotExist'\n"
        "print(json.dumps(out))"
    )

    process = run_manage("shell", "--no-imports", "-c", script)

    assert process.returncode == 0, process.stderr
    assert json.loads(process.stdout) == {
        "status": "READY",
        "args": ["done"],
        "attempts": 0,
        "malformed": "TaskResultDoesNotExist",
    }
