"""The Prometheus metrics endpoint: access, format, and the numbers it reports."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from dbtasks.models import DBTaskAttempt
from dbtasks.models import DBTaskResult
from tests import tasks
from tests.conftest import run_worker
from tests.ops_data import add_worker
from tests.ops_data import cancel
from tests.ops_data import count_minutes_so_far
from tests.ops_data import mark_running
from tests.ops_data import patient_heartbeats

# Metrics and health work on Django 5.2 too (make test-django52).
pytestmark = pytest.mark.urls("tests.ops_urls")

METRICS = "/ops/metrics/"
TOKEN = "s3cret-token-for-tests"

SAMPLE_RE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$")
LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(?:,|$)')


def unescape(value: str) -> str:
    return re.sub(r"\\(.)", lambda match: "\n" if match[1] == "n" else match[1], value)


def parse(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Parse exposition text strictly enough to catch format mistakes."""
    assert text.endswith("\n")
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    declared: dict[str, str] = {}
    helped: set[str] = set()
    for line in text.splitlines():
        if line.startswith("# HELP "):
            helped.add(line.split(" ", 3)[2])
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert name in helped, f"TYPE before HELP for {name}"
            declared[name] = kind
            continue
        match = SAMPLE_RE.match(line)
        assert match, f"not a sample line: {line!r}"
        name, labels_text, value = match.groups()
        labels = LABEL_RE.findall(labels_text or "")
        assert ",".join(f'{k}="{v}"' for k, v in labels) == (labels_text or "")
        family = re.sub(r"_(bucket|sum|count)$", "", name) if name not in declared else name
        assert family in declared, f"{name} has no TYPE line"
        key = (name, frozenset((k, unescape(v)) for k, v in labels))
        assert key not in samples, f"duplicate sample {line!r}"
        samples[key] = float(value)
    return samples


def value(samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset({"backend": "default", **labels}.items()))]


@pytest.fixture
def token(settings):
    settings.DBTASKS_METRICS_TOKEN = TOKEN
    return TOKEN


@pytest.fixture(autouse=True)
def _patient_heartbeats(settings):
    patient_heartbeats(settings)


# --- Access -----------------------------------------------------------------


def test_anonymous_get_404(client, db, token):
    assert client.get(METRICS).status_code == 404
    assert client.post(METRICS).status_code == 404


def test_non_staff_get_404(client, django_user_model, token):
    client.force_login(django_user_model.objects.create_user("someone", password="x"))

    assert client.get(METRICS).status_code == 404


def test_staff_session_is_enough(admin_client):
    response = admin_client.get(METRICS)

    assert response.status_code == 200
    assert response["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert "no-cache" in response["Cache-Control"]


def test_the_configured_bearer_token_is_enough(client, db, token):
    response = client.get(METRICS, headers={"Authorization": f"Bearer {TOKEN}"})

    assert response.status_code == 200
    assert response.content.decode().startswith("# HELP dbtasks_tasks ")
    # Lower-case scheme, as some scrapers send it.
    assert client.get(METRICS, headers={"Authorization": f"bearer {TOKEN}"}).status_code == 200
    # It reads only.
    assert client.post(METRICS, headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 405


@pytest.mark.parametrize(
    "header",
    [
        "Bearer wrong",
        f"Bearer {TOKEN}x",
        f"Bearer {TOKEN[:-1]}",
        f"Basic {TOKEN}",
        TOKEN,
        "Bearer ",
        "Bearer",
    ],
)
def test_anything_but_the_exact_token_gets_404(client, db, token, header):
    assert client.get(METRICS, headers={"Authorization": header}).status_code == 404


@pytest.mark.parametrize("configured", [None, ""])
def test_without_a_configured_token_no_bearer_token_is_accepted(client, db, settings, configured):
    if configured is None:
        del settings.DBTASKS_METRICS_TOKEN
    else:
        settings.DBTASKS_METRICS_TOKEN = configured

    assert client.get(METRICS, headers={"Authorization": "Bearer "}).status_code == 404
    assert client.get(METRICS, headers={"Authorization": "Bearer x"}).status_code == 404


# --- The numbers ------------------------------------------------------------


def test_queue_depth_outcomes_durations_and_workers(client, transactional_db, token):
    tasks.echo.enqueue(1)
    tasks.echo.enqueue(2)
    tasks.sleep_for.enqueue(0.3)
    tasks.always_fails.enqueue()  # three failed attempts
    run_worker()
    cancelled = tasks.noop.enqueue()
    cancel(cancelled.id)
    count_minutes_so_far()
    tasks.noop.enqueue()
    tasks.noop.using(run_after=timezone.now() + timedelta(hours=1)).enqueue()
    running = tasks.sleep_for.using(queue_name="low_priority").enqueue(1)
    mark_running(running.id, worker_id="w1", since=timezone.now())
    add_worker("w1")
    add_worker("w2")
    add_worker("dead", heartbeat_ago=timedelta(minutes=5))

    response = client.get(METRICS, headers={"Authorization": f"Bearer {TOKEN}"})
    samples = parse(response.content.decode())

    assert value(samples, "dbtasks_tasks", queue="default", status="ready") == 1
    assert value(samples, "dbtasks_tasks", queue="default", status="scheduled") == 1
    assert value(samples, "dbtasks_tasks", queue="default", status="running") == 0
    assert value(samples, "dbtasks_tasks", queue="low_priority", status="running") == 1
    assert value(samples, "dbtasks_tasks", queue="other", status="ready") == 0
    assert value(samples, "dbtasks_tasks", queue="default", status="blocked") == 0
    # The cancellation is counted apart, never as a failure.
    assert value(samples, "dbtasks_tasks_failed_last_hour", queue="default") == 1
    assert value(samples, "dbtasks_tasks_cancelled_last_hour", queue="default") == 1
    assert value(samples, "dbtasks_tasks_cancelled_last_hour", queue="other") == 0
    assert 0 <= value(samples, "dbtasks_oldest_ready_age_seconds", queue="default") < 60
    assert value(samples, "dbtasks_oldest_ready_age_seconds", queue="other") == 0
    assert value(samples, "dbtasks_workers") == 2

    assert value(samples, "dbtasks_attempts_last_hour", queue="default", outcome="successful") == 3
    assert value(samples, "dbtasks_attempts_last_hour", queue="default", outcome="failed") == 3
    assert value(samples, "dbtasks_attempts_last_hour", queue="other", outcome="failed") == 0

    name = "dbtasks_attempt_duration_seconds"
    bounds = ["0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1.0", "2.5", "5.0", "10.0"]
    bounds += ["30.0", "60.0", "+Inf"]
    buckets = [value(samples, f"{name}_bucket", queue="default", le=le) for le in bounds]
    assert buckets == sorted(buckets), "buckets are cumulative"
    assert buckets[-1] == value(samples, f"{name}_count", queue="default") == 6
    # sleep_for(0.3) took more than 0.25 s; everything took less than a second.
    assert value(samples, f"{name}_bucket", queue="default", le="0.25") <= 5
    assert value(samples, f"{name}_bucket", queue="default", le="1.0") == 6
    assert 0.3 <= value(samples, f"{name}_sum", queue="default") < 6
    assert value(samples, f"{name}_count", queue="other") == 0


def test_durations_are_measured_from_start_to_stop(client, transactional_db, token):
    tasks.echo.enqueue()
    tasks.echo.enqueue()
    run_worker()
    first, second = DBTaskAttempt.objects.order_by("pk")
    now = timezone.now()
    DBTaskAttempt.objects.filter(pk=first.pk).update(
        started_at=now - timedelta(seconds=7), stopped_at=now - timedelta(seconds=2)
    )
    DBTaskAttempt.objects.filter(pk=second.pk).update(
        started_at=now - timedelta(seconds=45), stopped_at=now - timedelta(seconds=5)
    )
    count_minutes_so_far()

    samples = parse(client.get(METRICS, headers={"Authorization": f"Bearer {TOKEN}"}).text)

    name = "dbtasks_attempt_duration_seconds"
    assert value(samples, f"{name}_bucket", queue="default", le="2.5") == 0
    assert value(samples, f"{name}_bucket", queue="default", le="5.0") == 1  # exactly 5 s
    assert value(samples, f"{name}_bucket", queue="default", le="30.0") == 1
    assert value(samples, f"{name}_bucket", queue="default", le="60.0") == 2
    assert value(samples, f"{name}_sum", queue="default") == pytest.approx(45)


def test_attempts_older_than_an_hour_are_not_counted(client, transactional_db, token):
    tasks.echo.enqueue()
    tasks.echo.enqueue()
    run_worker()
    old = DBTaskAttempt.objects.order_by("pk").first()
    assert old is not None
    long_ago = timezone.now() - timedelta(hours=1, minutes=1)
    DBTaskAttempt.objects.filter(pk=old.pk).update(started_at=long_ago, stopped_at=long_ago)
    count_minutes_so_far()

    samples = parse(client.get(METRICS, headers={"Authorization": f"Bearer {TOKEN}"}).text)

    assert value(samples, "dbtasks_attempts_last_hour", queue="default", outcome="successful") == 1


def test_label_values_from_the_database_are_escaped(client, db, token):
    result = tasks.noop.enqueue()
    DBTaskResult.objects.filter(pk=result.id).update(queue_name='we"ird\\queue\nname')

    text = client.get(METRICS, headers={"Authorization": f"Bearer {TOKEN}"}).text

    assert 'queue="we\\"ird\\\\queue\\nname"' in text
    samples = parse(text)
    assert value(samples, "dbtasks_tasks", queue='we"ird\\queue\nname', status="ready") == 1


def test_every_dbtasks_backend_is_reported(client, db, token, settings):
    settings.TASKS = {
        **settings.TASKS,
        "second": {"BACKEND": "dbtasks.backend.DatabaseBackend", "QUEUES": ["mail"]},
    }

    samples = parse(client.get(METRICS, headers={"Authorization": f"Bearer {TOKEN}"}).text)

    key = ("dbtasks_workers", frozenset({"backend": "second"}.items()))
    assert samples[key] == 0
    backends = {dict(labels).get("backend") for _, labels in samples}
    assert backends == {"default", "second"}  # not the ImmediateBackend


def test_a_scrape_costs_four_queries_per_backend_whatever_the_data(
    client, transactional_db, token, django_assert_num_queries
):
    for size in (1, 15):
        for _ in range(size):
            tasks.echo.enqueue()
            tasks.always_fails.enqueue()
        run_worker()
        count_minutes_so_far()
        # No session with a token: the hour's summaries, queues, paused queues, live
        # workers; on Postgres first the server's clock.
        with django_assert_num_queries(4 + (connection.vendor == "postgresql")):
            response = client.get(METRICS, headers={"Authorization": f"Bearer {TOKEN}"})
        assert response.status_code == 200
