"""Concurrent claims on Postgres: FOR UPDATE SKIP LOCKED, so no worker waits for another."""

from __future__ import annotations

import threading
from collections import Counter

from django.db import connection
from django.db import transaction
from django.utils import timezone

from dbtasks.models import DBTaskResult
from dbtasks.sql.claim import claim
from tests import tasks
from tests.live import patience


def claim_for(worker_id, limit):
    return claim(
        db="default",
        backend_name="default",
        queues=["default"],
        worker_id=worker_id,
        limit=limit,
        now=timezone.now(),
    )


def test_a_row_locked_by_a_claim_in_progress_is_skipped_not_waited_for(transactional_db):
    first = tasks.noop.enqueue()
    second = tasks.noop.enqueue()
    locked, release = threading.Event(), threading.Event()
    held = []

    def claim_and_hold_the_lock():
        try:
            with transaction.atomic():
                held.extend(claim_for("slow", 1))
                locked.set()
                release.wait(patience(30))
        finally:
            connection.close()

    thread = threading.Thread(target=claim_and_hold_the_lock)
    thread.start()
    try:
        assert locked.wait(patience(30))
        with connection.cursor() as cursor:
            # Waiting for the lock would raise instead of hanging the test.
            cursor.execute("SET lock_timeout = '2s'")
        rows = claim_for("fast", 2)
    finally:
        release.set()
        thread.join(patience(30))
        with connection.cursor() as cursor:
            cursor.execute("RESET lock_timeout")

    assert [row.pk for row in held] == [int(first.id)]
    assert [row.pk for row in rows] == [int(second.id)]


def test_workers_claiming_at_once_never_get_the_same_row(transactional_db):
    with transaction.atomic():
        for _ in range(300):
            tasks.noop.enqueue()
    start = threading.Barrier(6)
    claimed: Counter[int] = Counter()
    lock = threading.Lock()

    def claim_until_empty(worker_id):
        try:
            start.wait()
            while rows := claim_for(worker_id, 3):
                with lock:
                    claimed.update(row.pk for row in rows)
        finally:
            connection.close()

    threads = [threading.Thread(target=claim_until_empty, args=(f"w{n}",)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(patience(60))

    assert len(claimed) == 300
    assert set(claimed.values()) == {1}
    assert DBTaskResult.objects.filter(status="RUNNING", attempt_count=1).count() == 300
    assert DBTaskResult.objects.values("worker_id").distinct().count() > 1
