"""The staff ops dashboard: who may see it, what it shows, how many queries it costs."""

from __future__ import annotations

import re
from datetime import timedelta

import django
import pytest
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from dbtasks.models import BLOCKED
from dbtasks.models import FAILED
from dbtasks.models import SCHEDULED
from dbtasks.models import DBTaskAttempt
from dbtasks.models import DBTaskResult
from tests import tasks
from tests.conftest import run_worker
from tests.ops_data import add_worker
from tests.ops_data import cancel
from tests.ops_data import count_minutes_so_far
from tests.ops_data import mark_running
from tests.ops_data import patient_heartbeats

pytestmark = [
    pytest.mark.urls("tests.ops_urls"),
    # The page's templates use Django 6's template partials; on 5.2 they need
    # django-template-partials, which make test-django52 does not install.
    pytest.mark.skipif(django.VERSION < (6,), reason="the ops page needs template partials"),
]

OPS = "/ops/"
PANELS = "/ops/panels/"


@pytest.fixture
def staff_client(client, django_user_model):
    """A staff user who is not a superuser: staff is all the dashboard asks for."""
    user = django_user_model.objects.create_user("ops", password="x", is_staff=True)
    client.force_login(user)
    return client


def make_activity(size: int, tag: str = "") -> dict[str, list]:
    """``size`` tasks of each kind: successful, failed for good, cancelled, ready, scheduled,
    blocked, running.

    The running ones belong to up to four live workers ``worker-<tag><n>``.
    Needs transactional_db: the worker runs the tasks in other threads.
    """
    made: dict[str, list] = {
        "successful": [tasks.echo.enqueue(index) for index in range(size)],
        "failed": [tasks.always_fails.enqueue(f"boom {index}") for index in range(size)],
    }
    run_worker()
    made["cancelled"] = [tasks.noop.enqueue() for _ in range(size)]
    for result in made["cancelled"]:
        cancel(result.id)
    count_minutes_so_far()
    later = timezone.now() + timedelta(hours=1)
    made["ready"] = [tasks.noop.enqueue() for _ in range(size)]
    made["ready_low"] = [tasks.noop.using(queue_name="low_priority").enqueue()]
    made["scheduled"] = [tasks.noop.using(run_after=later).enqueue() for _ in range(size)]
    # dbtasks' own waiting states, as staging and workflows write them.
    made["staged_later"] = [tasks.noop.using(run_after=later).enqueue()]
    DBTaskResult.objects.filter(pk=made["staged_later"][0].id).update(status=SCHEDULED)
    made["blocked"] = [tasks.noop.enqueue() for _ in range(size)]
    DBTaskResult.objects.filter(pk__in=[r.id for r in made["blocked"]]).update(status=BLOCKED)
    made["running"] = [tasks.sleep_for.enqueue(1) for _ in range(size)]
    workers = [add_worker(f"worker-{tag}{index}") for index in range(min(size, 4))]
    for index, result in enumerate(made["running"]):
        worker_id = workers[index % len(workers)].worker_id
        mark_running(result.id, worker_id=worker_id, since=timezone.now() - timedelta(seconds=30))
    add_worker(f"long-gone-{tag}", heartbeat_ago=timedelta(hours=2))
    return made


@pytest.fixture(autouse=True)
def _patient_heartbeats(settings):
    patient_heartbeats(settings)


# --- Who may see it ---------------------------------------------------------


@pytest.mark.parametrize("url", [OPS, PANELS])
def test_anonymous_users_get_404_not_a_login_redirect(client, db, url):
    response = client.get(url)

    assert response.status_code == 404


@pytest.mark.parametrize("url", [OPS, PANELS])
def test_signed_in_non_staff_users_get_404(client, django_user_model, url):
    client.force_login(django_user_model.objects.create_user("someone", password="x"))

    assert client.get(url).status_code == 404
    # Not even the method check tells them the URL exists.
    assert client.post(url).status_code == 404


def test_inactive_staff_get_404(client, django_user_model):
    user = django_user_model.objects.create_user("gone", password="x", is_staff=True)
    client.force_login(user)
    user.is_active = False
    user.save()

    assert client.get(OPS).status_code == 404


def test_staff_see_the_page_and_only_read(staff_client):
    assert staff_client.get(OPS).status_code == 200
    assert staff_client.post(OPS).status_code == 405


def test_urls_reverse_by_name():
    assert reverse("dbtasks:ops") == OPS
    assert reverse("dbtasks:ops-panels") == PANELS
    assert reverse("dbtasks:metrics") == "/ops/metrics/"


# --- What it shows ----------------------------------------------------------


def test_queue_counts_age_workers_and_failures(staff_client, transactional_db):
    made = make_activity(2)
    oldest = DBTaskResult.objects.get(pk=made["ready"][0].id)
    DBTaskResult.objects.filter(pk=oldest.pk).update(
        available_after=timezone.now() - timedelta(minutes=5, seconds=3)
    )

    response = staff_client.get(OPS)

    assert response.status_code == 200
    queues = {queue.name: queue for queue, _ in response.context["queue_rows"]}
    assert list(queues) == ["default", "low_priority", "other"]
    default = queues["default"]
    assert (default.ready, default.scheduled, default.blocked, default.running) == (2, 3, 2, 2)
    # Cancelled tasks are counted apart: they are not failures.
    assert (default.failed_last_hour, default.cancelled_last_hour) == (2, 2)
    assert timedelta(minutes=5) <= default.oldest_ready_age < timedelta(minutes=6)
    assert (queues["low_priority"].ready, queues["other"].ready) == (1, 0)
    assert queues["other"].oldest_ready_age is None
    assert response.context["totals"] == {
        "ready": 3,
        "scheduled": 3,
        "blocked": 2,
        "running": 2,
        "failed_last_hour": 2,
        "cancelled_last_hour": 2,
    }
    cancellations = response.context["cancellations"]
    assert [c.result_id for c in cancellations] == [int(r.id) for r in made["cancelled"][::-1]]

    workers = {worker.worker_id: running for worker, running in response.context["worker_rows"]}
    assert set(workers) == {"worker-0", "worker-1"}  # "long-gone" is not alive
    assert [task.id for task in workers["worker-0"]] == [int(made["running"][0].id)]

    failures = response.context["failures"]
    # always_fails ran 3 times per task; the newest failures come first.
    assert len(failures) == 6
    assert failures[0].message == "ValueError: boom 1"
    assert failures[0].exception_class_path == "builtins.ValueError"
    assert {failure.number for failure in failures} == {1, 2, 3}
    # Only each task's third attempt was its last.
    assert {(failure.number, failure.then) for failure in failures} == {
        (1, "Retried"),
        (2, "Retried"),
        (3, "Gave up"),
    }

    content = response.content.decode()
    assert "ValueError: boom 1" in content
    assert "tests.tasks.sleep_for" in content
    assert "5m 3s" in content
    assert "Gave up" in content
    assert "No live worker" not in content


def test_throughput_chart_counts_this_hours_attempts(staff_client, transactional_db):
    tasks.echo.enqueue(1)
    tasks.echo.enqueue(2)
    tasks.always_fails.enqueue()  # three failed attempts
    run_worker()
    # Nothing shows before a worker counts the minute (once it has ended).
    before = staff_client.get(OPS)
    assert before.context["chart"].total == 0
    assert before.context["counted_until"] is None or (
        before.context["counted_until"] <= timezone.now()
    )
    count_minutes_so_far()

    response = staff_client.get(OPS)

    chart = response.context["chart"]
    assert len(chart.bars) == 60
    assert (chart.successful, chart.failed) == (2, 3)
    # All ran just now: the last bar (or, at a minute boundary, the one before).
    assert sum(bar.successful + bar.failed for bar in chart.bars[-2:]) == 5
    content = response.content.decode()
    assert "5 attempts finished in the last 60 minutes: 2 successful, 3 failed." in content
    assert content.count("<title>") == 1 + 60  # the page's, and one per bar
    assert '<title id="ops-chart-title">' in content
    assert 'role="img"' in content


def test_failures_older_than_an_hour_leave_the_failed_count(staff_client, transactional_db):
    old = tasks.always_fails.enqueue()
    tasks.always_fails.enqueue()
    run_worker()
    long_ago = timezone.now() - timedelta(hours=1, minutes=1)
    DBTaskResult.objects.filter(pk=old.id).update(finished_at=long_ago)
    DBTaskAttempt.objects.filter(result_id=int(old.id)).update(
        started_at=long_ago, stopped_at=long_ago
    )
    count_minutes_so_far()

    response = staff_client.get(OPS)

    queues = {queue.name: queue for queue, _ in response.context["queue_rows"]}
    assert queues["default"].failed_last_hour == 1
    assert DBTaskResult.objects.filter(status=FAILED).count() == 2


def test_a_failure_that_will_be_retried_says_so(staff_client, transactional_db):
    tasks.always_fails.using(queue_name="low_priority").enqueue()
    # One attempt only: the task goes back to READY (max_attempts is 5 there).
    run_worker("--max-tasks", "1")

    response = staff_client.get(OPS)

    (failure,) = response.context["failures"]
    assert failure.then == "Will retry"
    assert "Will retry" in response.content.decode()


def test_queues_nobody_serves_and_unconfigured_queues_are_flagged_in_words(staff_client, db):
    add_worker("only-default", queues=["default"])
    result = tasks.noop.enqueue()
    DBTaskResult.objects.filter(pk=result.id).update(queue_name="retired")

    response = staff_client.get(OPS)

    rows = {queue.name: (queue, unserved) for queue, unserved in response.context["queue_rows"]}
    assert list(rows) == ["default", "low_priority", "other", "retired"]
    assert rows["retired"][0].ready == 1
    assert not rows["retired"][0].configured
    assert [name for name, (_, unserved) in rows.items() if unserved] == [
        "low_priority",
        "other",
        "retired",
    ]
    content = response.content.decode()
    assert content.count("No live worker serves this queue.") == 2
    assert "Not in QUEUES: no worker will run these tasks." in content


def test_running_tasks_of_lost_workers_are_reported(staff_client, db):
    result = tasks.sleep_for.enqueue(1)
    mark_running(result.id, worker_id="vanished", since=timezone.now())

    response = staff_client.get(OPS)

    assert [task.id for task in response.context["orphans"]] == [int(result.id)]
    assert "1 running task belongs to workers that stopped heartbeating" in (
        response.content.decode()
    )


def test_an_empty_installation_renders(staff_client):
    response = staff_client.get(OPS)

    content = response.content.decode()
    assert "No live worker. Start one with" in content
    assert "No failures." in content
    assert "No attempts finished in the last 60 minutes." in content


def test_invalid_backend_options_are_shown(staff_client, settings):
    settings.TASKS = {
        "default": {"BACKEND": "dbtasks.backend.DatabaseBackend", "OPTIONS": {"max_attempts": 0}}
    }

    response = staff_client.get(OPS)

    assert response.status_code == 200
    assert "OPTIONS are invalid, so workers refuse to start" in response.content.decode()


# --- Live updates and the page's shape --------------------------------------


def test_page_polls_the_panels_partial(staff_client):
    content = staff_client.get(OPS).content.decode()

    assert 'hx-get="/ops/panels/?backend=default"' in content
    assert 'hx-trigger="every 5s"' in content
    assert 'hx-swap="outerHTML"' in content


def test_panels_endpoint_returns_only_the_partial_which_keeps_polling(staff_client, db):
    add_worker("w")

    response = staff_client.get(PANELS, headers={"HX-Request": "true"})

    content = response.content.decode()
    assert response.status_code == 200
    assert content.lstrip().startswith('<div id="ops-panels"')
    assert content.rstrip().endswith("</div>")
    assert "<html" not in content
    assert "<h1" not in content
    assert 'hx-trigger="every 5s"' in content
    assert "<code>w</code>" in content
    assert "no-cache" in response["Cache-Control"]


def test_page_is_standalone_and_fits_a_strict_csp(staff_client, transactional_db):
    make_activity(1)

    response = staff_client.get(OPS)

    content = response.content.decode()
    assert content.startswith("<!doctype html>")
    assert "Content-Security-Policy" in response.headers
    assert "style=" not in content
    assert "<style" not in content
    scripts = re.findall(r"<script[^>]*>", content)
    assert scripts == ['<script src="/static/dbtasks/htmx.min.js" defer>']
    assert '<link rel="stylesheet" href="/static/dbtasks/ops.css">' in content
    assert '<meta name="htmx-config" content=\'{"includeIndicatorStyles": false}\'>' in content
    # Tables are labelled for assistive technology.
    assert content.count('scope="col"') >= 20
    assert 'scope="row"' in content


def test_static_files_are_found():
    from django.contrib.staticfiles import finders

    htmx = finders.find("dbtasks/htmx.min.js")
    assert htmx is not None
    with open(htmx, encoding="utf-8") as file:
        assert "htmx 2." in file.readline()
    assert finders.find("dbtasks/ops.css") is not None


def test_svg_numbers_are_not_localized(staff_client, transactional_db, settings):
    settings.LANGUAGE_CODE = "de"
    settings.USE_THOUSAND_SEPARATOR = True
    tasks.echo.enqueue(1)
    run_worker()
    count_minutes_so_far()

    content = staff_client.get(OPS).content.decode()

    svg = content[content.index("<svg") : content.index("</svg>")]
    assert re.search(r'<rect class="ok" x="\d+(\.\d+)?" y="\d+(\.\d+)?"', svg)
    assert not re.search(r'="\d+,\d+"', svg)  # "591,0" would be no coordinate at all


def test_other_dbtasks_backends_are_selectable(staff_client, settings, db):
    settings.TASKS = {
        **settings.TASKS,
        "second": {"BACKEND": "dbtasks.backend.DatabaseBackend", "QUEUES": ["mail"]},
    }
    tasks.noop.enqueue()

    response = staff_client.get(OPS, {"backend": "second"})

    assert response.status_code == 200
    assert [queue.name for queue, _ in response.context["queue_rows"]] == ["mail"]
    content = response.content.decode()
    assert 'href="/ops/?backend=default"' in content
    assert 'aria-current="page">second</a>' in content
    assert staff_client.get(OPS, {"backend": "immediate"}).status_code == 404
    assert staff_client.get(OPS, {"backend": "nope"}).status_code == 404


# --- Cost -------------------------------------------------------------------

# Session and user (2) + the hour's summaries, queues, workers, running tasks,
# failures, cancellations (6) + unfinished workflows and the latest ones (2) + the
# controls: paused queues, concurrency and rate limits (3; no limit used here); on
# Postgres the server's clock (1).
DASHBOARD_QUERIES = 13 + (connection.vendor == "postgresql")


@pytest.mark.parametrize("url", [OPS, PANELS])
def test_query_count_does_not_grow_with_the_data(
    staff_client, transactional_db, django_assert_max_num_queries, url
):
    counts = []
    for size in (1, 12):
        make_activity(size, tag=str(size))
        with django_assert_max_num_queries(DASHBOARD_QUERIES) as captured:
            response = staff_client.get(url)
        assert response.status_code == 200
        counts.append(len(captured))

    assert counts == [DASHBOARD_QUERIES, DASHBOARD_QUERIES]
    # The second round really was bigger: 12 successful and 36 failed attempts more.
    assert DBTaskAttempt.objects.count() >= 4 * 13
    assert len(response.context["worker_rows"]) == 1 + 4


def test_scroll_regions_take_focus_and_cells_name_their_column(staff_client, transactional_db):
    make_activity(1)

    content = staff_client.get(OPS).content.decode()

    regions = re.findall(r'<div class="scroll"[^>]*>', content)
    assert len(regions) >= 4
    # Keyboard users can scroll a wide table; each region has its own name.
    for region in regions:
        assert 'role="region"' in region, region
        assert 'tabindex="0"' in region, region
    names = [re.search(r'aria-label="([^"]+)"', region) for region in regions]
    assert all(names)
    assert len({name.group(1) for name in names if name}) == len(regions)
    # On a phone each row stacks into "label: value" lines (ops.css): every data
    # cell names its column.
    cells = re.findall(r"<td(?![^>]*class=\"[^\"]*empty)[^>]*>", content)
    assert cells
    assert all("data-label=" in cell for cell in cells), cells
    assert content.count("Times in UTC.") == 1
    assert re.search(
        r"<time datetime=\"[^\"]+\">\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC</time>", content
    )
