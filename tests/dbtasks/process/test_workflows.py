"""Workflows run by real worker processes: every callback once, every chain in order."""

from __future__ import annotations

import time
from collections import Counter
from itertools import pairwise

import pytest
from django.db import transaction
from django.db.models import Count
from django.db.models import Max

from dbtasks import workflows
from dbtasks.compat import TaskResultStatus
from dbtasks.models import DBTaskAttempt
from dbtasks.models import DBTaskResult
from dbtasks.worker import EXIT_STALLED
from dbtasks.workflows.models import DBWorkflowMember
from tests import tasks
from tests.testapp.models import TaskRun

pytestmark = [pytest.mark.process, pytest.mark.slow]

WORKERS = 3
CHORDS = 30
MEMBERS = 5
CHAINS = 10
STEPS = 4
DEADLINE = 120


def enqueue_workflows():
    """CHORDS groups with a callback, CHAINS chains and one chain that fails at its first step."""
    chords, chains = [], []
    with transaction.atomic():
        for n in range(CHORDS):
            members = [
                workflows.call(tasks.record_run, f"chord-{n}-{m}", 0.01) for m in range(MEMBERS)
            ]
            chords.append(
                workflows.group(members, then=workflows.call(tasks.tally, f"chord-{n}")).enqueue()
            )
        for n in range(CHAINS):
            keys = [f"chain-{n}-{s}" for s in range(STEPS)]
            steps = [workflows.call(tasks.record_run, keys[0])]
            steps += [
                workflows.call(tasks.record_step, key, expected=previous)
                for previous, key in pairwise(keys)
            ]
            chains.append(workflows.chain(*steps).enqueue())
        failing = workflows.chain(tasks.fails_permanently, tasks.noop, tasks.noop).enqueue()
    return chords, chains, failing


def key_of(row: DBTaskResult) -> str:
    """The TaskRun key a fixture task's row counts its runs under."""
    # record_run(key, seconds); record_step(previous, key); tally(outcomes, key)
    return str(row.args[0] if row.task_path == "tests.tasks.record_run" else row.args[1])


def test_real_workers_run_each_callback_once_after_its_members(start_worker):
    chords, chains, failing = enqueue_workflows()
    started = time.monotonic()
    workers = [start_worker("--threads", "2", log_level="WARNING") for _ in range(WORKERS)]

    unfinished = DBTaskResult.objects.unfinished()
    while unfinished.exists():
        assert time.monotonic() - started < DEADLINE, (
            f"{unfinished.count()} tasks never finished: "
            f"{list(unfinished.values_list('id', 'status')[:10])}"
        )
        time.sleep(0.1)
    # None crashed. On a loaded machine a worker may have waited longer than
    # the heartbeat timeout to record an outcome (SQLite's write lock) and
    # left, by design, for the others to recover its attempts: counted below.
    assert all(worker.running or worker.returncode == EXIT_STALLED for worker in workers), [
        worker.returncode for worker in workers
    ]

    runs = dict(TaskRun.objects.values_list("key").annotate(runs=Count("id")))
    # A live worker presumed lost on a loaded machine may run a task twice
    # (at-least-once): only where an attempt was closed as WorkerLost.
    lost = Counter(
        DBTaskAttempt.objects.filter(
            exception_class_path="dbtasks.exceptions.WorkerLost"
        ).values_list("result_id", flat=True)
    )
    for n, chord in enumerate(chords):
        chord = chord.refresh()
        callback = chord.last
        assert [r.status for r in chord.results] == [TaskResultStatus.SUCCESSFUL] * (MEMBERS + 1)
        assert 1 <= runs[f"chord-{n}"] <= 1 + lost[int(callback.id)]  # the callback ran once
        assert callback.args == [
            [
                {
                    "id": member.id,
                    "task": "tests.tasks.record_run",
                    "status": "SUCCESSFUL",
                    "return_value": f"chord-{n}-{m}",
                    "error": None,
                    "exception_class_path": None,
                }
                for m, member in enumerate(chord.results[:MEMBERS])
            ],
            f"chord-{n}",
        ]
        last_member_finished = max(member.finished_at for member in chord.results[:MEMBERS])
        assert callback.started_at >= last_member_finished
    for n, chain in enumerate(chains):
        results = chain.refresh().results
        assert [r.return_value for r in results] == [f"chain-{n}-{s}" for s in range(STEPS)]
        for before, after in pairwise(results):
            assert after.started_at >= before.finished_at
    counted = DBTaskResult.objects.exclude(task_path__in=[tasks.noop.module_path])
    by_key = {key_of(row): row.pk for row in counted if row.status == "SUCCESSFUL"}
    assert {key: count for key, count in runs.items() if count > 1 + lost[by_key[key]]} == {}

    first, *rest = failing.refresh().results
    assert first.status == TaskResultStatus.FAILED
    for step in rest:
        assert step.status == TaskResultStatus.FAILED
        assert step.attempts == 0
        assert "tests.tasks.fails_permanently" in step.errors[0].traceback

    # Every member's finish was counted once, and nothing waits any more.
    assert not DBWorkflowMember.objects.filter(settled=False).exists()
    assert DBWorkflowMember.objects.aggregate(Max("waiting_for"))["waiting_for__max"] == 0
