"""Pausing a queue: its tasks wait, running ones finish, new ones are accepted."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError
from django.core.management import call_command
from django.urls import reverse

from dbtasks.models import DBPausedQueue
from dbtasks.queues import pause
from dbtasks.queues import paused_queues
from dbtasks.queues import resume
from tests import tasks
from tests.conftest import run_worker
from tests.dbtasks.helpers import row_of


def queue_command(*args: str) -> str:
    out = StringIO()
    call_command("dbtasks_queue", *args, stdout=out)
    return out.getvalue()


def test_a_paused_queues_tasks_wait_until_it_is_resumed(transactional_db):
    assert pause("low_priority") is True
    waiting = tasks.noop.using(queue_name="low_priority").enqueue()  # still accepted
    other = tasks.noop.enqueue()

    run_worker()

    assert row_of(waiting).status == "READY"
    assert row_of(waiting).attempt_count == 0
    assert row_of(other).status == "SUCCESSFUL"  # other queues go on

    assert resume("low_priority") is True
    run_worker()
    assert row_of(waiting).status == "SUCCESSFUL"


def test_pause_and_resume_say_whether_anything_changed(db):
    assert pause("default") is True
    assert pause("default") is False
    assert paused_queues() == {"default"}
    assert resume("default") is True
    assert resume("default") is False
    assert paused_queues() == frozenset()


def test_the_command_pauses_lists_and_resumes(db):
    assert queue_command("pause", "low_priority", "other") == (
        "low_priority: paused\nother: paused\n"
    )
    assert queue_command("list") == "default\trunning\nlow_priority\tpaused\nother\tpaused\n"
    assert queue_command("resume", "other") == "other: resumed\n"
    assert queue_command("list", "other") == "other\trunning\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("pause", "nowhere"), "Unknown queue(s) nowhere; backend 'default' has"),
        (("pause",), "Name the queue(s) to pause."),
    ],
)
def test_the_command_refuses_mistakes(db, args, message):
    with pytest.raises(CommandError, match=message.replace("(", r"\(").replace(")", r"\)")):
        queue_command(*args)


@pytest.mark.urls("tests.ops_urls")  # the project's URLconf is not dbtasks' to rely on
def test_health_and_metrics_report_paused_queues(transactional_db, admin_client):
    pause("other")

    out = StringIO()
    with pytest.raises(SystemExit):  # no worker is alive in this test: unhealthy
        call_command("dbtasks_health", stdout=out, stderr=out)
    assert out.getvalue().rstrip().endswith("(paused: other)")

    metrics = admin_client.get(reverse("dbtasks:metrics")).content.decode()
    assert 'dbtasks_queue_paused{backend="default",queue="other"} 1' in metrics
    assert 'dbtasks_queue_paused{backend="default",queue="default"} 0' in metrics


def test_the_admin_pauses_by_adding_and_resumes_by_deleting(admin_client):
    response = admin_client.post(
        reverse("admin:dbtasks_dbpausedqueue_add"),
        {"queue_name": "other", "backend_name": "default"},
    )
    assert response.status_code == 302
    assert paused_queues() == {"other"}

    paused = DBPausedQueue.objects.get()
    admin_client.post(
        reverse("admin:dbtasks_dbpausedqueue_delete", args=[paused.pk]), {"post": "yes"}
    )
    assert paused_queues() == frozenset()
