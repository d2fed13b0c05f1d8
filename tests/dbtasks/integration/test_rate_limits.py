"""Rate limits: starts spaced period / limit apart per key; throttled tasks wait READY."""

from __future__ import annotations

from datetime import timedelta

import pytest

from dbtasks.models import READY
from dbtasks.models import SUCCESSFUL
from dbtasks.models import DBRateBucket
from dbtasks.models import DBTaskAttempt
from tests import tasks
from tests.dbtasks import limit_tasks
from tests.dbtasks.helpers import Clock
from tests.dbtasks.helpers import override_options
from tests.dbtasks.helpers import row_of
from tests.dbtasks.helpers import run_worker_at

LIMITED = "tests.dbtasks.limit_tasks.limited"
ECHO = "tests.tasks.echo"


def limit_task(settings, path: str = LIMITED, **rate_limit) -> None:
    override_options(settings, tasks={path: {"rate_limit": rate_limit}})


def statuses(results) -> list[str]:
    return [row_of(result).status for result in results]


@pytest.fixture
def fast_limited(monkeypatch):
    monkeypatch.setattr(limit_tasks, "WORK", 0)


def test_throttled_tasks_wait_ready_without_using_attempts(transactional_db, settings):
    limit_task(settings, ECHO, limit=1, period="10 seconds")
    results = [tasks.echo.enqueue(n) for n in range(3)]
    clock = Clock()

    run_worker_at(clock)

    assert statuses(results) == [SUCCESSFUL, READY, READY]
    assert [row_of(result).attempt_count for result in results] == [1, 0, 0]
    assert row_of(results[1]).rate_key == f"task:{ECHO}"
    bucket = DBRateBucket.objects.get()
    assert (bucket.queue_name, bucket.key, bucket.limit) == ("default", f"task:{ECHO}", 1)
    assert bucket.next_at == clock.now + timedelta(seconds=10)
    assert bucket.window_starts == 1

    clock.advance(seconds=9.9)
    run_worker_at(clock)
    assert statuses(results) == [SUCCESSFUL, READY, READY]  # its slot has not come

    clock.advance(seconds=0.1)
    run_worker_at(clock)
    assert statuses(results) == [SUCCESSFUL, SUCCESSFUL, READY]
    started = sorted(DBTaskAttempt.objects.values_list("started_at", flat=True))
    assert started[1] - started[0] == timedelta(seconds=10)


def test_a_throttled_key_holds_up_no_other_work(transactional_db, settings):
    override_options(
        settings,
        queues={"low_priority": {"rate_limit": {"limit": 1, "period": "1 hour"}}},
    )
    throttled = [tasks.echo.using(queue_name="low_priority").enqueue(n) for n in range(3)]
    other = [tasks.echo.enqueue(n) for n in range(3)]  # default queue: no limit

    run_worker_at(Clock())

    assert statuses(throttled) == [SUCCESSFUL, READY, READY]
    assert row_of(throttled[1]).rate_key == "queue:low_priority"
    assert statuses(other) == [SUCCESSFUL] * 3


def test_a_key_from_an_argument_limits_each_value_apart(transactional_db, settings, fast_limited):
    limit_task(settings, limit=1, period="1 minute", key="tenant")
    a1, a2 = limit_tasks.limited.enqueue("a", 1), limit_tasks.limited.enqueue("a", 2)
    b1 = limit_tasks.limited.enqueue(tenant="b", n=1)

    run_worker_at(Clock())

    assert statuses([a1, a2, b1]) == [SUCCESSFUL, READY, SUCCESSFUL]
    assert row_of(a2).rate_key == f"task:{LIMITED}:a"
    assert DBRateBucket.objects.count() == 2


def test_a_key_function(transactional_db, settings, fast_limited):
    limit_task(settings, limit=1, period="1 minute", key="tests.dbtasks.limit_tasks.tenant_key")
    first, second = limit_tasks.limited.enqueue("x", 1), limit_tasks.limited.enqueue("x", 2)

    run_worker_at(Clock())

    assert statuses([first, second]) == [SUCCESSFUL, READY]
    assert row_of(second).rate_key == f"task:{LIMITED}:x"


def test_a_limit_removed_from_the_settings_releases_its_waiting_tasks(transactional_db, settings):
    limit_task(settings, ECHO, limit=1, period="1 hour")
    results = [tasks.echo.enqueue(n) for n in range(3)]
    clock = Clock()
    run_worker_at(clock)
    assert statuses(results) == [SUCCESSFUL, READY, READY]

    override_options(settings, tasks={})
    run_worker_at(clock)

    assert statuses(results) == [SUCCESSFUL] * 3


def test_a_changed_limit_applies_from_the_next_start(transactional_db, settings):
    limit_task(settings, ECHO, limit=1, period="1 hour")
    results = [tasks.echo.enqueue(n) for n in range(3)]
    clock = Clock()
    run_worker_at(clock)
    first_start = clock.now

    limit_task(settings, ECHO, limit=2, period="1 hour")
    clock.advance(seconds=1)
    run_worker_at(clock)  # a claim finds the bucket under the old limit, and retunes it
    run_worker_at(clock)

    assert statuses(results) == [SUCCESSFUL, SUCCESSFUL, READY]
    bucket = DBRateBucket.objects.get()
    assert (bucket.limit, bucket.period) == (2, timedelta(hours=1))
    # Two starts in the hour: the next when the first leaves the window.
    assert bucket.next_at == first_start + timedelta(hours=1)


def test_a_burst_of_the_limit_then_one_as_each_start_ages_out(transactional_db, settings):
    limit_task(settings, ECHO, limit=2, period="10 seconds")
    results = [tasks.echo.enqueue(n) for n in range(5)]
    clock = Clock()

    run_worker_at(clock)
    assert statuses(results) == [SUCCESSFUL] * 2 + [READY] * 3
    clock.advance(seconds=9.999)
    run_worker_at(clock)
    assert statuses(results) == [SUCCESSFUL] * 2 + [READY] * 3  # both still in the window
    clock.advance(seconds=0.001)
    run_worker_at(clock)
    assert statuses(results) == [SUCCESSFUL] * 4 + [READY]


def test_limits_above_a_hundred_space_their_starts(transactional_db, settings):
    limit_task(settings, ECHO, limit=1000, period="1 hour")
    results = [tasks.echo.enqueue(n) for n in range(3)]
    clock = Clock()

    run_worker_at(clock)

    assert statuses(results) == [SUCCESSFUL, READY, READY]
    bucket = DBRateBucket.objects.get()
    assert bucket.next_at == clock.now + timedelta(seconds=3.6)
    assert bucket.starts == []  # no log: one timestamp


def test_rate_and_concurrency_limits_together(transactional_db, settings):
    override_options(
        settings,
        tasks={
            ECHO: {
                "rate_limit": {"limit": 1, "period": "1 hour"},
                "concurrency": {"limit": 1},
            }
        },
    )
    results = [tasks.echo.enqueue(n) for n in range(2)]
    clock = Clock()
    run_worker_at(clock)
    clock.advance(hours=1)
    run_worker_at(clock)

    assert statuses(results) == [SUCCESSFUL, SUCCESSFUL]


def test_enqueue_many_keys_each_call(transactional_db, settings, fast_limited):
    from dbtasks.bulk import enqueue_many

    limit_task(settings, limit=1, period="1 minute", key="tenant")
    results = enqueue_many(limit_tasks.limited, [(("a", 1), {}), (("b", 1), {})])

    assert [row_of(result).rate_key for result in results] == [
        f"task:{LIMITED}:a",
        f"task:{LIMITED}:b",
    ]


def test_a_key_function_that_cannot_be_imported_fails_the_check(settings):
    from django.core.checks import run_checks

    path = "tests.dbtasks.limit_tasks.no_such_function"
    limit_task(settings, limit=1, period="1 second", key=path)

    errors = [error for error in run_checks() if error.id == "dbtasks.E002"]

    assert [error.msg for error in errors] == [
        f"The rate limit key function {path!r} cannot be imported."
    ]


def test_a_key_naming_a_missing_argument_refuses_the_enqueue(db, settings):
    limit_task(settings, limit=1, period="1 second", key="tenant_id")

    with pytest.raises(TypeError, match="rate limit key names argument 'tenant_id'"):
        limit_tasks.limited.enqueue("a", 1)


def test_a_deleted_bucket_is_made_again(transactional_db, settings):
    limit_task(settings, ECHO, limit=1, period="1 hour")
    results = [tasks.echo.enqueue(n) for n in range(2)]
    clock = Clock()
    worker = run_worker_at(clock)
    DBRateBucket.objects.all().delete()  # say, in the admin

    worker.throttle.claim(limit=1, now=clock.now)  # finds it gone
    worker.throttle.discover()

    assert DBRateBucket.objects.count() == 1
    assert statuses(results) == [SUCCESSFUL, READY]


def test_a_throttled_worker_sleeps_until_the_next_slot(transactional_db, settings):
    limit_task(settings, ECHO, limit=1, period="10 seconds")
    for n in range(2):
        tasks.echo.enqueue(n)
    clock = Clock()
    throttle = run_worker_at(clock).throttle

    assert throttle.claim(limit=1, now=clock.now) == []  # nothing due: learns when
    assert throttle.next_slot_at == clock.now + timedelta(seconds=10)
    clock.advance(seconds=9.95)
    # Idle, it would poll again after its delay; the slot comes sooner.
    assert throttle.wait_for(0.25) == pytest.approx(0.051)
    assert throttle.wait_for(0.01) == 0.01
    clock.advance(seconds=1)
    assert throttle.wait_for(0.25) == 0  # late: claim at once


def test_the_purge_forgets_buckets_idle_past_their_period(transactional_db, settings, fast_limited):
    from dbtasks.purge import purge_expired
    from tests.dbtasks.helpers import default_backend

    limit_task(settings, limit=1, period="2 days", key="tenant")
    for tenant in "ab":
        limit_tasks.limited.enqueue(tenant, 1)
    clock = Clock()
    run_worker_at(clock)
    assert DBRateBucket.objects.count() == 2

    # next_at is the start's time plus the period; a period after that, no
    # window a new start could share holds the logged start.
    clock.advance(days=4, seconds=-1)
    purge_expired(default_backend(), now=clock.now)
    assert DBRateBucket.objects.count() == 2

    clock.advance(seconds=1)
    purge_expired(default_backend(), now=clock.now)
    assert DBRateBucket.objects.count() == 0
