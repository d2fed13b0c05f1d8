"""A fleet on one machine: worker hosts in network namespaces, one cut off mid-task, then healed.

Each worker "host" is a network namespace joined to this one by a veth pair
(``tests/netns.py``); a private Postgres cluster (``tests/pg_cluster.py``)
listens on this side's end of each pair, and on loopback for this process,
which plays the web app: it enqueues the tasks and watches the rows.
Cutting a host takes its link down: nothing tells either end, its queries
hang where they are. The other host's worker must recover the cut host's
attempts within ``heartbeat_timeout`` + one recovery pass (every
``heartbeat_interval``); once the link is back, the cut worker's late
outcomes are refused, and it goes on working.
"""

from __future__ import annotations

import re
import signal
from collections import Counter
from datetime import datetime
from datetime import timedelta

from dbtasks.models import FAILED
from dbtasks.models import RUNNING
from dbtasks.models import SUCCESSFUL
from dbtasks.models import DBTaskAttempt
from dbtasks.models import DBTaskResult
from dbtasks.models import DBWorker
from tests import tasks
from tests.fleet import FLEET_TEST
from tests.fleet import OPTIONS
from tests.fleet import RECOVERY_BOUND
from tests.fleet import now
from tests.fleet import sessions_of
from tests.live import patience
from tests.live import wait_until
from tests.netns import Host
from tests.testapp.models import TaskRun
from tests.workers import WorkerProcess

pytestmark = FLEET_TEST

TASK_SECONDS = 1.5
# The line a worker logs when the outcome of an attempt closed by someone else is refused.
DISCARDED = re.compile(
    r"attempt \d+ was closed by someone else .*; its outcome is discarded$", re.MULTILINE
)


def running_for(worker_id: str) -> set[int]:
    rows = DBTaskResult.objects.filter(status=RUNNING, worker_id=worker_id)
    return set(rows.values_list("pk", flat=True))


def lost_attempts() -> dict[int, DBTaskAttempt]:
    attempts = DBTaskAttempt.objects.filter(exception_class_path__endswith=".WorkerLost")
    return {attempt.result_id: attempt for attempt in attempts}


def rows_of(results) -> list[DBTaskResult]:
    return list(DBTaskResult.objects.filter(pk__in=[result.id for result in results]))


def all_succeeded(results) -> bool:
    return all(row.status == SUCCESSFUL for row in rows_of(results))


def cut_mid_task(host: Host, worker: WorkerProcess, worker_id: str) -> tuple[datetime, set[int]]:
    """Cut ``host`` off while its worker runs tasks; return when, and the attempts it had."""

    def started() -> set[int]:
        running = running_for(worker_id)
        runs = TaskRun.objects.filter(pid=worker.pid).count()
        return running if running and runs >= len(running) else set()

    wait_until(started, timeout=60, what="the host to be running tasks")
    cut_at = now()
    host.cut()
    # What the host sent before the cut has been handled once its sessions are idle.
    wait_until(
        lambda: "active" not in [state for state, _ in sessions_of(host)],
        timeout=30,
        what="the cut host's last queries to finish on the server",
    )
    in_flight = running_for(worker_id)
    assert in_flight, "the cut caught no attempt running on the host"
    return cut_at, in_flight


def test_a_host_cut_off_mid_task_is_recovered_fenced_and_goes_on(fleet):
    host_a, host_b = fleet.hosts
    # Host a alone serves "other": what it runs after the heal shows it still works.
    cut = fleet.start_worker(host_a, "--threads", "3", "--queue", "default,other", options=OPTIONS)
    cut_id = cut.wait_registered().worker_id
    other = fleet.start_worker(host_b, "--threads", "3", "--queue", "default", options=OPTIONS)
    other.wait_registered()
    results = [tasks.record_run.enqueue(f"task-{n}", TASK_SECONDS) for n in range(18)]

    cut_at, in_flight = cut_mid_task(host_a, cut, cut_id)
    wait_until(
        lambda: set(lost_attempts()) >= in_flight,
        timeout=RECOVERY_BOUND + 30,
        what="host b's worker to recover host a's attempts",
    )
    lost = lost_attempts()
    recovered_after = max(lost[pk].stopped_at for pk in in_flight) - cut_at
    # Exactly those, by host b (the error names the lost worker, host b logs the close).
    assert set(lost) == in_flight
    assert {attempt.worker_id for attempt in lost.values()} == {cut_id}
    closes = wait_until(
        # Logged just after each close commits.
        lambda: (
            other.output().count(f"worker {cut_id} lost") >= len(in_flight)
            and other.output().count(f"worker {cut_id} lost")
        ),
        timeout=30,
        what="host b to log the closes",
        details=other.describe,
    )
    assert closes == len(in_flight)
    # A loaded machine may run the recovery pass a little late.
    assert recovered_after <= timedelta(seconds=RECOVERY_BOUND + patience(2)), recovered_after

    host_a.heal()
    healed_at = now()
    wait_until(
        lambda: all_succeeded(results),
        timeout=90,
        what="every task to succeed",
        details=lambda: cut.describe() + other.describe(),
    )
    discarded = wait_until(
        lambda: (
            len(DISCARDED.findall(cut.output())) >= len(in_flight)
            and len(DISCARDED.findall(cut.output()))
        ),
        timeout=60,
        what="host a's late outcomes to be refused",
        details=cut.describe,
    )
    assert discarded == len(in_flight)
    # Queries answered late after the heal did not make host a's clock look off.
    assert "clock is" not in cut.output() + other.output()
    duplicates = assert_nothing_lost(results, in_flight, cut_id)

    # Healed, host a's worker beats again and takes work.
    later = [tasks.record_run.using(queue_name="other").enqueue(f"later-{n}") for n in range(3)]
    wait_until(
        lambda: all_succeeded(later),
        timeout=60,
        what="host a to run tasks again after the heal",
        details=cut.describe,
    )
    assert {run.pid for run in TaskRun.objects.filter(key__startswith="later-")} == {cut.pid}
    assert DBWorker.objects.filter(worker_id=cut_id).exists()
    back_after = max(row.finished_at or healed_at for row in rows_of(later)) - healed_at
    print(  # noqa: T201
        f"fleet: {len(in_flight)} attempts in flight at the cut, recovered after "
        f"{recovered_after.total_seconds():.2f}s (bound {RECOVERY_BOUND:g}s), "
        f"{duplicates} duplicate runs, {discarded} late outcomes discarded, "
        f"host a ran new work {back_after.total_seconds():.2f}s after the heal"
    )
    for worker in (cut, other):
        worker.send(signal.SIGTERM)
        assert worker.wait() == 0, worker.describe()


def assert_nothing_lost(results, in_flight: set[int], cut_id: str) -> int:
    """Every task ran; twice at most, and only those in flight at the cut; return the extra runs."""
    rows = rows_of(results)
    key_of = {row.pk: row.args[0] for row in rows}
    runs = Counter(TaskRun.objects.filter(key__startswith="task-").values_list("key", flat=True))
    assert set(runs) == set(key_of.values())
    assert {key for key, count in runs.items() if count > 1} <= {key_of[pk] for pk in in_flight}
    assert max(runs.values()) <= 2
    for row in rows:
        assert row.attempt_count == (2 if row.pk in in_flight else 1), row.pk
    # The attempts recovery closed stay closed; the retry (on either host) succeeded.
    for pk in in_flight:
        attempts = list(
            DBTaskAttempt.objects.filter(result_id=pk)
            .order_by("number")
            .values_list("number", "worker_id", "outcome", "exception_class_path")
        )
        assert attempts[0] == (1, cut_id, FAILED, "dbtasks.exceptions.WorkerLost")
        assert [(number, outcome) for number, _, outcome, _ in attempts[1:]] == [(2, SUCCESSFUL)]
    return sum(count - 1 for count in runs.values())
