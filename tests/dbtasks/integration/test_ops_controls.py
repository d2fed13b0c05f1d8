"""The ops dashboard's controls panel: paused queues (and their buttons), concurrency, rates."""

from __future__ import annotations

import re

import django
import pytest
from django.contrib.auth.models import Permission
from django.test import Client

from dbtasks.models import DBPausedQueue
from dbtasks.ops.controls import describe_rate
from dbtasks.queues import pause
from tests import tasks
from tests.dbtasks import limit_tasks
from tests.dbtasks.helpers import Clock
from tests.dbtasks.helpers import override_options
from tests.dbtasks.helpers import run_worker_at

pytestmark = [
    pytest.mark.urls("tests.ops_urls"),
    pytest.mark.skipif(django.VERSION < (6,), reason="the ops page needs template partials"),
]

OPS = "/ops/"
PANELS = "/ops/panels/"
PAUSE = "/ops/queues/pause/?backend=default"
RESUME = "/ops/queues/resume/?backend=default"


@pytest.fixture
def operator(django_user_model):
    """Staff who may pause and resume queues, with Django's CSRF check on."""
    user = django_user_model.objects.create_user("ops", password="x", is_staff=True)
    user.user_permissions.add(
        *Permission.objects.filter(codename__in=["add_dbpausedqueue", "delete_dbpausedqueue"])
    )
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    return client


def controls_panel(client) -> str:
    content = client.get(PANELS).content.decode()
    return content[content.index('id="ops-controls"') :]


def form_token(content: str) -> str:
    match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', content)
    assert match, "the form carries a CSRF token"
    return match.group(1)


def test_each_queue_shows_its_state_and_the_button_that_changes_it(operator, db):
    pause("low_priority")

    panel = controls_panel(operator)

    default = panel[panel.index('<th scope="row">default</th>') :]
    assert "Running" in default.split("</tr>")[0]
    assert ">Pause</button>" in default.split("</tr>")[0]
    low = panel[panel.index('<th scope="row">low_priority</th>') :].split("</tr>")[0]
    assert "Paused</span> since" in low
    assert ">Resume</button>" in low
    assert 'action="/ops/queues/resume/?backend=default"' in low


def test_pause_and_resume_from_the_page(operator, db):
    token = form_token(operator.get(OPS).content.decode())

    response = operator.post(PAUSE, {"queue": "default", "csrfmiddlewaretoken": token})

    assert response.status_code == 303
    assert response["Location"] == "/ops/?backend=default"
    assert list(DBPausedQueue.objects.values_list("queue_name", flat=True)) == ["default"]

    operator.post(RESUME, {"queue": "default", "csrfmiddlewaretoken": token})
    assert not DBPausedQueue.objects.exists()


def test_a_post_without_its_csrf_token_is_refused(operator, db):
    assert operator.post(PAUSE, {"queue": "default"}).status_code == 403
    assert not DBPausedQueue.objects.exists()


def test_who_may_pause(client, django_user_model, db):
    # Not staff: the URL does not exist for them.
    client.force_login(django_user_model.objects.create_user("someone", password="x"))
    assert client.post(PAUSE, {"queue": "default"}).status_code == 404
    # Staff without the paused-queue permissions: forbidden.
    client.force_login(django_user_model.objects.create_user("s", password="x", is_staff=True))
    assert client.post(PAUSE, {"queue": "default"}).status_code == 403
    assert client.get(PAUSE).status_code == 405
    assert not DBPausedQueue.objects.exists()


def test_an_unknown_queue_is_a_404(operator, db):
    token = form_token(operator.get(OPS).content.decode())

    response = operator.post(PAUSE, {"queue": "nope", "csrfmiddlewaretoken": token})

    assert response.status_code == 404
    assert not DBPausedQueue.objects.exists()


def test_concurrency_limits_show_slots_in_use_and_tasks_waiting(operator, db, settings):
    override_options(
        settings, tasks={"tests.dbtasks.limit_tasks.limited": {"concurrency": {"limit": 1}}}
    )
    for n in range(3):
        limit_tasks.limited.enqueue("a", n)

    panel = controls_panel(operator)

    row = panel[panel.index("<code>task:tests.dbtasks.limit_tasks.limited</code>") :]
    cells = re.findall(r"<td[^>]*>([^<]*)</td>", row.split("</tr>")[0])
    assert cells == ["1", "1", "2"]  # limit, in use, waiting BLOCKED


def test_rate_limits_show_the_limit_starts_and_tasks_waiting(operator, transactional_db, settings):
    override_options(
        settings,
        tasks={"tests.tasks.echo": {"rate_limit": {"limit": 1, "period": "1 minute"}}},
    )
    for n in range(3):
        tasks.echo.enqueue(n)
    run_worker_at(Clock())  # one start; the next a minute later

    panel = controls_panel(operator)

    row = panel[panel.index("<code>task:tests.tasks.echo</code>") :].split("</tr>")[0]
    assert re.findall(r'data-label="([^"]+)">([^<]*)<', row) == [
        ("Queue", "default"),
        ("Limit", "1 per 1m"),
        ("Starts this period", "1"),
        ("Next start from", ""),  # a <time> element follows
        ("Waiting", "2"),
    ]


def test_without_limits_the_panel_says_so(operator, db):
    panel = controls_panel(operator)

    assert "No task has used a concurrency limit." in panel
    assert "No task has used a rate limit." in panel


@pytest.mark.parametrize(
    ("limit", "seconds", "text"),
    [
        (10, 1, "10 per 1s"),
        (60, 60, "60 per 1m"),
        (5, 0.5, "5 per 500ms"),
        (3, 5400, "3 per 1h 30m"),
    ],
)
def test_rates_read_as_starts_per_period(limit, seconds, text):
    from datetime import timedelta

    assert describe_rate(limit, timedelta(seconds=seconds)) == text
