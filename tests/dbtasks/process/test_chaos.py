"""Chaos: workers SIGKILLed while 3,000 tasks run; none is lost, duplicates only where a kill hit.

4 worker processes with 2 threads each drain 3,000 tasks (each sleeps 5-20 ms,
so kills catch some mid-run). Every 1-2 seconds one of them, preferably one
running tasks at that moment, is killed with SIGKILL and a fresh one started:
15 times, or until every task has finished. (Each fresh worker spends a second
or more of CPU starting up; on a busy 2-core machine, killing on until the end
would leave the queue to workers that are mostly starting, and the test's
length to chance.) Then:

- every task is SUCCESSFUL: none lost, none left RUNNING or READY, none FAILED;
- each task's run counter (``tests.tasks.record_run`` writes a ``TaskRun`` row
  per run) shows extra runs only for tasks with an attempt closed as
  ``dbtasks.exceptions.WorkerLost``: a run that was in flight when its worker
  died, which lost-worker recovery gave back to the retry policy. At-least-once
  delivery allows exactly those duplicates, and no others;
- every attempt was closed exactly once.

Heartbeats are short for this test (100 ms, presumed lost after 1 s of
silence), so a killed worker's tasks come back within about a second.
``max_attempts`` is 20: every kill costs each task it interrupts one attempt,
and the retry policy counts those too, so with the default of 3 a task caught
by three kills would end FAILED, which would be the policy working, not a
lost task. 20 is more than there are kills, so no task can run out of
attempts, and anything but SUCCESSFUL at the end is a bug.

The schedule of kills is seeded: the same run every time, up to the timing
of the processes themselves.
"""

from __future__ import annotations

import random
import signal
import time
from collections import Counter
from itertools import pairwise

import pytest
from django.db import connection
from django.db import transaction
from django.db.models import Count
from django.db.models import Sum

from dbtasks import workflows
from dbtasks.compat import TaskResultStatus
from dbtasks.models import DBTaskAttempt
from dbtasks.models import DBTaskResult
from dbtasks.worker import EXIT_STALLED
from dbtasks.workflows.models import DBWorkflowMember
from tests import tasks
from tests.testapp.models import TaskRun

pytestmark = [pytest.mark.process, pytest.mark.slow]

TASKS = 3000
WORKERS = 4
THREADS = 2
OPTIONS = {
    "heartbeat_interval": "100 ms",
    "heartbeat_timeout": "1 second",
    "max_attempts": 20,
    "backoff_factor": 0,  # retried at once: the test measures loss, not patience
}
KILLS = 15
WORKER_LOST = "dbtasks.exceptions.WorkerLost"
DEADLINE = 240  # seconds for the whole drain; a passing run takes a fraction


def pid_of(worker_id: str) -> int:
    """Worker ids are ``name:pid:random`` (dbtasks.worker.make_worker_id)."""
    return int(worker_id.split(":")[-2])


def pick_a_busy_worker(alive, schedule, patience=2.0):
    """A worker running tasks right now, and how many (any worker if none is, in time).

    Looked up the moment before the kill, so that kills catch tasks mid-run
    (a fresh worker needs a second or two before it runs anything).
    """
    deadline = time.monotonic() + patience
    while True:
        running = Counter(
            pid_of(worker_id)
            for worker_id in DBTaskResult.objects.filter(
                status=TaskResultStatus.RUNNING
            ).values_list("worker_id", flat=True)
        )
        busy = sorted((worker for worker in alive if running[worker.pid]), key=lambda w: w.pid)
        if busy or time.monotonic() > deadline:
            victim = schedule.choice(busy or alive)
            return victim, running[victim.pid]
        time.sleep(0.02)


def drain_under_kills(start_worker, seed: int) -> tuple[dict[int, int], set[int], float]:
    """Run WORKERS workers until every task is SUCCESSFUL, SIGKILLing one every 1-2 s.

    Each killed worker is replaced by a fresh one, KILLS times. Return the
    killed pids (with how many tasks each was running), the pids of workers
    that left as stalled, and the seconds it took.
    """
    schedule = random.Random(seed)
    started_at = time.monotonic()
    alive = []
    killed: dict[int, int] = {}  # pid -> tasks it was running when killed
    number = 0

    def start_one():
        nonlocal number
        number += 1
        alive.append(
            start_worker(
                "--threads", str(THREADS), "--id", f"chaos{number}",
                options=OPTIONS, log_level="WARNING",
            )
        )  # fmt: skip

    for _ in range(WORKERS):
        start_one()

    def replace_the_stalled():
        # On a loaded machine a worker may wait longer than the (short)
        # heartbeat timeout for SQLite's write lock and leave, by design, for
        # the others to recover its attempts. Replace it like a killed one;
        # any other exit is a crash.
        for worker in [worker for worker in alive if not worker.running]:
            assert worker.returncode == EXIT_STALLED, worker.output()[-5_000:]
            stalled.add(worker.pid)
            alive.remove(worker)
            start_one()

    stalled: set[int] = set()
    unfinished = DBTaskResult.objects.exclude(status__in=[TaskResultStatus.SUCCESSFUL])
    while unfinished.exists():
        assert time.monotonic() - started_at < DEADLINE, "the tasks did not drain in time"
        replace_the_stalled()
        if len(killed) == KILLS:
            time.sleep(0.1)  # the rest drains in peace
            continue
        time.sleep(schedule.uniform(1.0, 2.0))
        replace_the_stalled()
        victim, running = pick_a_busy_worker(alive, schedule)
        victim.send(signal.SIGKILL)
        # The victim may have left as stalled between the look and the kill.
        assert victim.wait() in (-signal.SIGKILL, EXIT_STALLED)
        killed[victim.pid] = running
        alive.remove(victim)
        start_one()
    return killed, stalled, time.monotonic() - started_at


def test_killed_workers_lose_no_task(start_worker):
    keys = [f"chaos-{n}" for n in range(TASKS)]
    with transaction.atomic():
        for n, key in enumerate(keys):
            tasks.record_run.enqueue(key, (5 + n % 16) / 1000)

    killed, stalled, elapsed = drain_under_kills(start_worker, seed=20261121)

    # Every task succeeded; nothing is left running or waiting.
    assert DBTaskResult.objects.count() == TASKS
    assert not DBTaskResult.objects.exclude(status=TaskResultStatus.SUCCESSFUL).exists()
    assert set(TaskRun.objects.values_list("key", flat=True)) == set(keys)  # none lost

    # Duplicate runs only where a kill interrupted a run (an attempt closed as WorkerLost).
    runs = dict(TaskRun.objects.values_list("key").annotate(runs=Count("id")))
    duplicated = {key: count for key, count in runs.items() if count > 1}
    duplicates = sum(count - 1 for count in duplicated.values())
    lost = list(
        DBTaskAttempt.objects.filter(exception_class_path=WORKER_LOST).select_related("result")
    )
    keys_with_lost_attempts = {attempt.result.args[0] for attempt in lost}
    assert duplicates <= len(lost)
    assert set(duplicated) <= keys_with_lost_attempts
    # And every failed attempt was such an interruption: nothing else went wrong.
    failed = DBTaskAttempt.objects.filter(outcome=DBTaskAttempt.Outcome.FAILED)
    assert set(failed.values_list("exception_class_path", flat=True)) <= {WORKER_LOST}

    # Each attempt closed exactly once: one attempt row per run started, one success per task.
    assert (
        DBTaskAttempt.objects.count()
        == DBTaskResult.objects.aggregate(runs=Sum("attempt_count"))["runs"]
    )
    assert DBTaskAttempt.objects.filter(outcome=DBTaskAttempt.Outcome.SUCCESSFUL).count() == TASKS
    assert max(DBTaskResult.objects.values_list("attempt_count", flat=True)) < 20

    lost_from_killed = sum(
        1 for attempt in lost if pid_of(attempt.worker_id) in killed.keys() | stalled
    )
    assert len(killed) >= 3, f"only {len(killed)} kills: the tasks drained too fast to test"
    assert lost_from_killed >= 1  # the kills did catch tasks mid-run
    print(  # noqa: T201 - the figures docs/reliability.md quotes
        f"\nchaos on {connection.vendor}: {TASKS} tasks, {WORKERS} workers x {THREADS} threads, "
        f"{len(killed)} SIGKILLs ({sum(killed.values())} tasks running at the kills), "
        f"{len(stalled)} workers left as stalled, in {elapsed:.1f}s; "
        f"{len(lost)} attempts closed as WorkerLost "
        f"({lost_from_killed} of killed workers, {len(lost) - lost_from_killed} of live "
        f"workers presumed lost); {len(duplicated)} tasks ran more than once, "
        f"{duplicates} duplicate runs; {TaskRun.objects.count()} runs in all"
    )


CHORDS = 150
CHORD_MEMBERS = 8
CHAINS = 50
CHAIN_STEPS = 4


def test_killed_workers_complete_every_workflow_once(start_worker):
    """SIGKILLs while chords complete: every callback is released once, after all its members.

    A member's finish and the release of its callback commit together; a
    worker killed between them loses both, and lost-worker recovery closes
    the attempt (retried) later. So: every callback runs (none waits for
    ever), receives each member's outcome once, starts after its last
    member finished, and runs again only where a kill interrupted its own
    run (at-least-once, like any task). Chains run their steps in order,
    each receiving the previous one's value.
    """
    chords, chains = [], []
    with transaction.atomic():
        for n in range(CHORDS):
            calls = [
                workflows.call(tasks.record_run, f"chord-{n}-{m}", (5 + m % 16) / 1000)
                for m in range(CHORD_MEMBERS)
            ]
            report = workflows.call(tasks.tally, f"chord-{n}")
            chords.append(workflows.group(calls, then=report).enqueue())
        for n in range(CHAINS):
            keys = [f"chain-{n}-{s}" for s in range(CHAIN_STEPS)]
            steps = [workflows.call(tasks.record_run, keys[0], 0.005)]
            steps += [
                workflows.call(tasks.record_step, key, expected=previous)
                for previous, key in pairwise(keys)
            ]
            chains.append(workflows.chain(*steps).enqueue())

    killed, stalled, elapsed = drain_under_kills(start_worker, seed=20261130)

    total = CHORDS * (CHORD_MEMBERS + 1) + CHAINS * CHAIN_STEPS
    assert DBTaskResult.objects.count() == total
    assert not DBTaskResult.objects.exclude(status=TaskResultStatus.SUCCESSFUL).exists()
    runs = dict(TaskRun.objects.values_list("key").annotate(runs=Count("id")))
    lost_runs = Counter(
        DBTaskAttempt.objects.filter(exception_class_path=WORKER_LOST).values_list(
            "result_id", flat=True
        )
    )
    successes = Counter(
        DBTaskAttempt.objects.filter(outcome=DBTaskAttempt.Outcome.SUCCESSFUL).values_list(
            "result_id", flat=True
        )
    )
    assert set(successes.values()) == {1}  # every task, callbacks included, succeeded once

    for n, chord in enumerate(chords):
        chord = chord.refresh()
        finished, callback = chord.results[:-1], chord.last
        # Released once: its outcomes were prepended to its arguments once.
        assert len(callback.args) == 2
        outcomes, key = callback.args
        assert key == f"chord-{n}"
        assert [o["id"] for o in outcomes] == [member.id for member in finished]
        assert {o["status"] for o in outcomes} == {"SUCCESSFUL"}
        finish_times = [member.finished_at for member in finished if member.finished_at]
        assert callback.started_at is not None
        assert len(finish_times) == CHORD_MEMBERS
        assert callback.started_at >= max(finish_times)
        # It ran once, plus once more for each run of it a kill interrupted.
        assert 1 <= runs[key] <= 1 + lost_runs[int(callback.id)]
        for m, member in enumerate(finished):
            assert 1 <= runs[f"chord-{n}-{m}"] <= 1 + lost_runs[int(member.id)]
    for n, chain in enumerate(chains):
        results = chain.refresh().results
        assert [r.return_value for r in results] == [f"chain-{n}-{s}" for s in range(CHAIN_STEPS)]
        for before, after in pairwise(results):
            assert after.started_at is not None
            assert before.finished_at is not None
            assert after.started_at >= before.finished_at

    assert not DBWorkflowMember.objects.filter(settled=False).exists()
    assert not DBWorkflowMember.objects.filter(waiting_for__gt=0).exists()
    assert len(killed) >= 3, f"only {len(killed)} kills: the workflows finished too fast to test"
    callbacks_lost = sum(lost_runs[int(chord.last.id)] for chord in chords)
    print(  # noqa: T201 - the figures docs/reliability.md quotes
        f"\nworkflow chaos on {connection.vendor}: {CHORDS} chords of {CHORD_MEMBERS} and "
        f"{CHAINS} chains of {CHAIN_STEPS} ({total} tasks), {len(killed)} SIGKILLs "
        f"({sum(killed.values())} tasks running at the kills), {len(stalled)} workers left "
        f"as stalled, in {elapsed:.1f}s; {sum(lost_runs.values())} attempts closed as "
        f"WorkerLost ({callbacks_lost} of callbacks); "
        f"every callback released once"
    )
