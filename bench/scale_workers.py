"""Pickup beside another queue's backlog, and drain end to end (``bench/scale.py``).

Both start real worker processes (``python -m django ...``) with this
process's settings, and stop them with SIGTERM (SIGKILL after 30 s).
``drain_here()`` also runs in django-tasks-db's environment
(``bench/scale_peer.py``), so both systems are timed by the same code.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from bench.harness import ROOT


def start(argv: list[str]) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    env.pop("VIRTUAL_ENV", None)
    return subprocess.Popen(
        argv, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL
    )


def stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_for(
    condition: Callable[[], bool], *, timeout: float, what: str, interval: float = 0.02
) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"Timed out after {timeout:.0f}s waiting for {what}.")
        time.sleep(interval)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def pickup(url: str, *, backlog: int, count: int = 30, spacing: float = 0.3) -> dict[str, Any]:
    """p50/p95 enqueue -> start of an idle worker serving "default", without and with
    ``backlog`` READY rows in the queue "other"."""
    from bench import scale_claim

    results = {}
    for label, rows in [("idle system", 0), (f"{backlog:,} READY in another queue", backlog)]:
        scale_claim.reset()
        if rows:
            scale_claim.fill(rows, queue="other", status="READY", priority=0, due_in=-60)
        latencies = stamped_latencies(count=count, spacing=spacing)
        results[label] = {
            "p50_ms": round(percentile(latencies, 0.5), 1),
            "p95_ms": round(percentile(latencies, 0.95), 1),
            "max_ms": round(max(latencies), 1),
        }
        print(f"  pickup, {label}: {results[label]}", flush=True)
    scale_claim.reset()
    return results


def stamped_latencies(*, count: int, spacing: float) -> list[float]:
    from bench import tasks
    from dbtasks.models import DBTaskResult

    def done(results: list[Any]) -> Callable[[], bool]:
        ids = [result.id for result in results]
        return lambda: (
            DBTaskResult.objects.filter(pk__in=ids, status="SUCCESSFUL").count() == len(ids)
        )

    worker = start([sys.executable, "-m", "django", "dbtasks_worker", "--queue", "default"])
    try:
        wait_for(done([tasks.stamp.enqueue(time.time())]), timeout=120, what="the warm-up")
        time.sleep(2)  # idle: a polling worker backs off to its longest delay
        sent = []
        for _ in range(count):
            at = time.time()
            sent.append((at, tasks.stamp.enqueue(at)))
            time.sleep(spacing)
        wait_for(done([result for _, result in sent]), timeout=120, what="the stamped tasks")
    finally:
        stop([worker])
    rows = DBTaskResult.objects.in_bulk([int(result.id) for _, result in sent])
    started = {pk: row.return_value for pk, row in rows.items()}  # stamp returns its start
    return [(float(started[int(result.id)] or "nan") - at) * 1000 for at, result in sent]


def drain(url: str, *, count: int, processes: list[int], threads: int = 1) -> dict[str, Any]:
    """dbtasks here, django-tasks-db in its own environment, same code, same database server.

    ``threads``: each dbtasks worker's ``--threads`` (``db_worker`` runs one task at a time).
    """
    from bench.environment import others_python

    python, why = others_python()
    peer_url = (
        url + "_peer" if url.startswith("postgres") else url.replace(".sqlite3", "-peer.sqlite3")
    )
    results: dict[str, Any] = {}
    for workers in processes:
        command = [sys.executable, "-m", "django", "dbtasks_worker", "--threads", str(threads)]
        ours = drain_here(count=count, processes=workers, command=command)
        label = "dbtasks" if threads == 1 else f"dbtasks --threads {threads}"
        results[f"{label}, {workers} process(es)"] = ours
        print(f"  drain, {label}, {workers} process(es): {ours}", flush=True)
        if python is None:
            results["django-tasks-db"] = f"not run: {why}"
            continue
        argv = [python, "-m", "bench.scale_peer", "--url", peer_url, "--count", str(count)]
        output = subprocess.run(
            [*argv, "--processes", str(workers)],
            cwd=ROOT,
            check=True,
            capture_output=True,
            text=True,
            env={**os.environ, "VIRTUAL_ENV": ""},
        ).stdout
        theirs = eval_last_line(output)
        ratio = round(ours["tasks_per_s"] / theirs["tasks_per_s"], 2)
        results[f"django-tasks-db --interval 0, {workers} process(es)"] = theirs
        results[f"ratio, {workers} process(es)"] = ratio
        print(f"  drain, django-tasks-db, {workers} process(es): {theirs} ({ratio}x)", flush=True)
    return results


def eval_last_line(output: str) -> dict[str, Any]:
    import json

    result: dict[str, Any] = json.loads(output.strip().splitlines()[-1])
    return result


def drain_here(*, count: int, processes: int, command: list[str]) -> dict[str, Any]:
    """Time ``processes`` fresh ``command`` workers draining a ``count`` no-op backlog."""
    from django.db import transaction
    from django.db.models import Max
    from django.db.models import Min
    from django.tasks import task_backends

    from bench import tasks

    model = result_model()
    model.objects.all().delete()
    backend = task_backends["default"]
    if hasattr(backend, "enqueue_many"):
        backend.enqueue_many(tasks.noop, [((), {})] * count)
    else:
        with transaction.atomic():
            for _ in range(count):
                tasks.noop.enqueue()
    launched = time.time()
    workers = [start(command) for _ in range(processes)]
    try:
        wait_for(
            lambda: model.objects.filter(status="SUCCESSFUL").count() >= count,
            timeout=max(600, count / 5),
            what=f"{count} tasks to finish",
            interval=0.5,  # the end is read from the rows: polling only costs
        )
    finally:
        stop(workers)
    span = model.objects.aggregate(first=Min("started_at"), last=Max("finished_at"))
    seconds = span["last"].timestamp() - launched
    model.objects.all().delete()
    return {
        "seconds": round(seconds, 2),
        "tasks_per_s": round(count / seconds, 1),
        "first_start_s": round(span["first"].timestamp() - launched, 2),
        "steady_tasks_per_s": round(count / (span["last"] - span["first"]).total_seconds(), 1),
    }


def result_model() -> Any:
    from django.apps import apps

    app = "dbtasks" if apps.is_installed("dbtasks") else "django_tasks_database"
    return apps.get_model(app, "DBTaskResult")
