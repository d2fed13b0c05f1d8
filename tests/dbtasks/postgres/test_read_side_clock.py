"""The read side judges by the workers' clock (the database server's), not the web host's.

A web host whose clock runs five minutes ahead would otherwise report every
live worker as gone: the health check fails the deployment, the metrics page
alerts, the dashboard says nothing runs.
"""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
import time_machine
from django.core.management import call_command
from django.utils import timezone

from dbtasks.ops import prometheus
from dbtasks.ops.views import panels_context
from tests.ops_data import add_worker
from tests.ops_data import database_backend
from tests.ops_data import patient_heartbeats

pytestmark = pytest.mark.postgres

AHEAD = timedelta(minutes=5)  # well past the heartbeat timeout


def live_workers_in_metrics(**options) -> float:
    families = prometheus.collect({"default": database_backend()}, **options)
    (workers,) = [family for family in families if family.name == "dbtasks_workers"]
    (sample,) = workers.samples
    return sample.value


@pytest.fixture
def worker_and_a_fast_web_clock(db, settings):
    patient_heartbeats(settings)
    add_worker("w1")  # heartbeating now
    with time_machine.travel(timezone.now() + AHEAD, tick=True):
        yield


@pytest.mark.usefixtures("worker_and_a_fast_web_clock")
def test_health_metrics_and_dashboard_see_the_live_worker():
    out = StringIO()
    call_command("dbtasks_health", stdout=out)  # exits 1 (SystemExit) if unhealthy
    assert "1 worker alive" in out.getvalue()
    assert live_workers_in_metrics() == 1
    rows = panels_context(database_backend())["worker_rows"]
    assert [worker.worker_id for worker, _running in rows] == ["w1"]


@pytest.mark.usefixtures("worker_and_a_fast_web_clock")
def test_by_the_web_hosts_clock_the_worker_would_look_gone():
    # What the default avoids: the same reading at this host's time.
    assert live_workers_in_metrics(now=timezone.now()) == 0
