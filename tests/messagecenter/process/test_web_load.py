"""The web app under load while a worker drains: no errors, every notification delivered.

gunicorn serves the app as the Procfile runs it (DEBUG off), on the test
database; 10 signed-in clients send and poll without pausing, 15 requests
each (tests/load.py: a count, not a duration, so that the mix of requests is
the same on a slow machine); one worker delivers what they send to the
stand-in ntfy.
The longer run whose figures are in docs/reliability.md is
``python -m tests.load --seconds 15 --clients 20``.
"""

from __future__ import annotations

import pytest
from django.tasks import TaskResultStatus

from dbtasks.models import DBTaskResult
from messagecenter.models import Notification
from tests.live import child_env
from tests.live import start_web
from tests.live import wait_until
from tests.load import run_load
from tests.workers import database_url

pytestmark = [pytest.mark.process, pytest.mark.slow]

CLIENTS = 10
REQUESTS = 15  # each: its first a send, then about 1 in 10
PASSWORD = "load-test-password-0123"


@pytest.fixture
def web(start_worker, ntfy, tmp_path):
    """gunicorn on the test database; set up after (so stopped before) the workers."""
    env = child_env(database_url(), NTFY_URL=ntfy.topic_url)
    server, url = start_web(env, tmp_path / "web.log")
    yield server, url
    server.stop()
    print(server.describe())  # noqa: T201 - shown when the test fails


def test_no_errors_under_load_and_everything_is_delivered(
    start_worker, web, ntfy, django_user_model, monkeypatch
):
    server, url = web
    for n in range(CLIENTS):
        django_user_model.objects.create_user(f"load-{n}", password=PASSWORD)
    monkeypatch.setenv("NTFY_URL", ntfy.topic_url)
    start_worker("--threads", "2", log_level="WARNING")

    report = run_load(url, [(f"load-{n}", PASSWORD) for n in range(CLIENTS)], requests=REQUESTS)

    print(report.text())  # noqa: T201 - the figures, for the record
    assert report.errors == [], report.text()
    figures = report.figures()
    assert figures["send"]["requests"] > 0
    assert figures["poll"]["requests"] > figures["send"]["requests"]
    assert Notification.objects.count() == len(report.sent)
    wait_until(
        lambda: not DBTaskResult.objects.exclude(status=TaskResultStatus.SUCCESSFUL).exists(),
        timeout=60,
        what="the worker to deliver every notification",
    )
    assert sorted(request.json["message"] for request in ntfy.requests) == sorted(
        Notification.objects.values_list("message", flat=True)
    )
    log = server.output()
    assert "Traceback" not in log
    assert "Internal Server Error" not in log
