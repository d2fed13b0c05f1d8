"""The ops dashboard's workflow panel: unfinished workflows, the latest ones by state."""

from __future__ import annotations

import django
import pytest
from django.urls import reverse

from dbtasks import workflows
from dbtasks.ops.workflows import latest_workflows
from dbtasks.ops.workflows import unfinished_workflows
from tests import tasks
from tests.conftest import run_worker
from tests.dbtasks.helpers import default_backend

pytestmark = [
    pytest.mark.urls("tests.ops_urls"),
    pytest.mark.skipif(django.VERSION < (6,), reason="the ops page needs template partials"),
]


def test_the_panel_counts_unfinished_workflows_and_members_by_state(admin_client, transactional_db):
    done = workflows.chain(tasks.noop, tasks.always_fails).enqueue()
    run_worker()
    waiting = workflows.group([tasks.noop, tasks.noop], then=tasks.noop).enqueue()
    backend = default_backend()

    assert unfinished_workflows(backend) == 1
    latest, earlier = latest_workflows(backend)
    assert (latest.id, latest.waiting, latest.running, latest.failed) == (int(waiting.id), 3, 0, 0)
    assert (earlier.id, earlier.successful, earlier.failed) == (int(done.id), 1, 1)

    response = admin_client.get("/ops/panels/")
    content = response.content.decode()
    assert "Workflows <small>(1 unfinished)</small>" in content
    assert reverse("admin:dbtasks_dbworkflow_change", args=[waiting.id]) in content
    assert "group(2, then=noop)" in content
