"""Figure 8: the operations reads on a busy hour (Postgres).

Each size N builds, with ``generate_series`` in a few statements: N tasks
finished in the last hour (one attempt each, spread evenly over the hour;
one in 50 failed for good, one in 10 in the ``low_priority`` queue), 10,000
waiting tasks (6,000 ready, 2,000 due later, 1,000 SCHEDULED, 500 BLOCKED,
500 RUNNING on four live workers) and 100 cancellations; then ``VACUUM
ANALYZE``, as autovacuum would soon after such a load. The workers' minute
summaries are then written once (timed: ``summarise ms/minute``, the cost
one worker pays per minute), and each read is timed through Django's test
client as a signed-in staff user (the dashboard, its panels, the metrics,
the admin task list with each filter) or called directly (the health check).

    python -m bench.ops_reads                      # 10k, 100k, 1M rows; database ops_bench
    python -m bench.ops_reads --sizes 10000 --repeat 5
    make bench BENCH_ARGS="--only ops_reads"       # the same, inside the full bench

Standalone it creates the database ``ops_bench`` on ``BENCH_POSTGRES_URL``
(default ``postgres://postgres@127.0.0.1:5432/postgres``) and drops it at
the end (``--keep`` keeps it).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.harness import DBTASKS
from bench.harness import RESULT_MARK
from bench.harness import Arm
from bench.harness import Metric
from bench.orchestrator import ArmFailed
from bench.orchestrator import Bench

NAME = "ops_reads"
TITLE = "8. Operations reads on a busy hour (Postgres, median ms)"
WAITING = 10_000
SIZES = (10_000, 100_000, 1_000_000)

# What is timed: a label and a URL (or "health" for the direct call).
READS: tuple[tuple[str, str], ...] = (
    ("/ops/", "/ops/"),
    ("/ops/panels/", "/ops/panels/"),
    ("/ops/metrics/", "/ops/metrics/"),
    ("dbtasks_health", "health"),
    ("admin list", "/admin/dbtasks/dbtaskresult/"),
    ("admin: ready", "/admin/dbtasks/dbtaskresult/?state=ready"),
    ("admin: scheduled", "/admin/dbtasks/dbtaskresult/?state=scheduled"),
    ("admin: blocked", "/admin/dbtasks/dbtaskresult/?state=blocked"),
    ("admin: running", "/admin/dbtasks/dbtaskresult/?state=running"),
    ("admin: successful", "/admin/dbtasks/dbtaskresult/?state=successful"),
    ("admin: failed", "/admin/dbtasks/dbtaskresult/?state=failed"),
    ("admin: cancelled", "/admin/dbtasks/dbtaskresult/?state=cancelled"),
    ("admin: queue low_priority", "/admin/dbtasks/dbtaskresult/?queue_name=low_priority"),
    ("admin: backend default", "/admin/dbtasks/dbtaskresult/?backend_name=default"),
)
METRICS = tuple(
    Metric(f"{label} @ {size:,}", f"{label}, {size:,} finished", "ms", higher_is_better=False)
    for size in SIZES
    for label, _ in READS
)


def params(quick: bool) -> dict[str, Any]:
    return {"sizes": [10_000, 100_000] if quick else list(SIZES), "repeat": 5 if quick else 15}


# --- In the full bench (make bench) -----------------------------------------------


def run(bench: Bench) -> None:
    settings = params(bench.quick)
    figure = bench.figure_results(NAME)
    figure["params"] = settings
    for arm in bench.arms_for((DBTASKS,), stores=("postgres",)):
        try:
            url = bench.database(arm, "ops", settings="bench.web_settings")
            for round_number in range(1, bench.rounds + 1):
                data: dict[str, Any] = {"round": round_number}
                for size in settings["sizes"]:
                    bench.call(
                        arm,
                        NAME,
                        "fill",
                        {"rows": size},
                        url=url,
                        settings="bench.web_settings",
                        timeout=1800,
                    )
                    timed = bench.call(
                        arm,
                        NAME,
                        "time",
                        {"repeat": settings["repeat"]},
                        url=url,
                        settings="bench.web_settings",
                        timeout=1800,
                    )
                    for label, value in timed["median_ms"].items():
                        data[f"{label} @ {size:,}"] = value
                    data[f"detail @ {size:,}"] = timed
                    print(f"    {arm.name} {size:>9,}: {summary_line(timed)}", flush=True)
                bench.record(NAME, arm, data)
        except ArmFailed as error:
            bench.error(NAME, arm, error)


def summary_line(timed: dict[str, Any]) -> str:
    return ", ".join(f"{label} {ms:.1f}" for label, ms in timed["median_ms"].items())


# --- Inside the arm (a Django process on the bench database) ---------------------


def measure(arm: Arm, phase: str, params: dict[str, Any]) -> dict[str, Any]:
    if phase == "fill":
        return fill(params["rows"])
    return time_reads(params["repeat"])


def fill(rows: int) -> dict[str, Any]:
    """Empty the tables, then build the busy hour: ``rows`` finished tasks and the rest."""
    from django.db import connection

    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE dbtasks_dbtaskattempt, dbtasks_dbtaskresult, dbtasks_dbworker, "
            "dbtasks_dbminutesummary RESTART IDENTITY CASCADE"
        )
        insert_busy_hour(cursor, finished=rows, waiting=WAITING)
        for table in ("dbtasks_dbtaskresult", "dbtasks_dbtaskattempt", "dbtasks_dbworker"):
            cursor.execute(f"VACUUM ANALYZE {table}")
    filled = time.perf_counter() - started
    summarised, per_minute = write_summaries()
    return {
        "rows": rows,
        "fill_seconds": round(filled, 1),
        "minutes_summarised": summarised,
        "summarise_ms_per_minute": per_minute,
    }


def insert_busy_hour(cursor: Any, *, finished: int, waiting: int) -> None:
    """Insert the busy hour with ``cursor`` (Postgres): see the module docstring.

    Also used by the EXPLAIN tests (tests/dbtasks/postgres/test_ops_reads_plans.py).
    """
    hour = 3600.0 / finished
    rows = finished
    # Finished in the last hour, oldest first (ids grow with time, as in life).
    cursor.execute(
        f"""
        INSERT INTO dbtasks_dbtaskresult (
            task_path, backend_name, queue_name, priority, takes_context, arguments,
            status, enqueued_at, started_at, finished_at, last_attempted_at,
            available_after, attempt_count, worker_id
        )
        SELECT 'bench.tasks.noop', 'default',
            CASE WHEN mod(i, 10) = 0 THEN 'low_priority' ELSE 'default' END,
            0, false, '{{"args": [], "kwargs": {{}}}}',
            CASE WHEN mod(i, 50) = 0 THEN 'FAILED' ELSE 'SUCCESSFUL' END,
            t - interval '40 ms', t - interval '15 ms', t, t - interval '15 ms',
            t - interval '40 ms', 1, ''
        FROM (
            SELECT i, now() - ((%s - i) * {hour}) * interval '1 second' AS t
            FROM generate_series(1, %s) AS i
        ) AS finished
        """,
        [rows, rows],
    )
    cursor.execute(
        """
        INSERT INTO dbtasks_dbtaskattempt (
            result_id, number, worker_id, started_at, stopped_at, outcome,
            exception_class_path, traceback
        )
        SELECT id, 1, 'bench-w' || mod(id, 4), started_at, finished_at, status,
            CASE WHEN status = 'FAILED' THEN 'builtins.ValueError' ELSE '' END,
            CASE WHEN status = 'FAILED'
                THEN E'Traceback (most recent call last):\\nValueError: boom' ELSE '' END
        FROM dbtasks_dbtaskresult
        """
    )
    # Cancelled in the last hour: FAILED, never run.
    cursor.execute(
        """
        INSERT INTO dbtasks_dbtaskresult (
            task_path, backend_name, queue_name, priority, takes_context, arguments,
            status, enqueued_at, finished_at, cancelled_at, available_after,
            attempt_count, worker_id
        )
        SELECT 'bench.tasks.noop', 'default', 'default', 0, false,
            '{"args": [], "kwargs": {}}', 'FAILED', t, t, t, t, 0, ''
        FROM (
            SELECT now() - i * interval '30 seconds' AS t FROM generate_series(1, 100) AS i
        ) AS cancelled
        """
    )
    # Waiting and running now: the newest ids. ``share`` places row i among
    # 10,000 whatever ``waiting`` is: 60% ready, 20% due later, 10% SCHEDULED,
    # 5% BLOCKED, 5% RUNNING.
    cursor.execute(
        """
        INSERT INTO dbtasks_dbtaskresult (
            task_path, backend_name, queue_name, priority, takes_context, arguments,
            status, enqueued_at, started_at, last_attempted_at, available_after,
            attempt_count, worker_id
        )
        SELECT 'bench.tasks.noop', 'default',
            CASE WHEN mod(i, 10) = 0 THEN 'low_priority' ELSE 'default' END,
            0, false, '{"args": [], "kwargs": {}}',
            CASE WHEN share <= 8000 THEN 'READY' WHEN share <= 9000 THEN 'SCHEDULED'
                 WHEN share <= 9500 THEN 'BLOCKED' ELSE 'RUNNING' END,
            now() - interval '1 minute',
            CASE WHEN share > 9500 THEN now() - interval '2 seconds' END,
            CASE WHEN share > 9500 THEN now() - interval '2 seconds' END,
            CASE WHEN share <= 6000 THEN now() - i * interval '10 ms'
                 WHEN share <= 9500 THEN now() + interval '1 day'
                 ELSE now() - interval '2 seconds' END,
            CASE WHEN share > 9500 THEN 1 ELSE 0 END,
            CASE WHEN share > 9500 THEN 'bench-w' || mod(i, 4) ELSE '' END
        FROM (
            SELECT i, (i * 10000) / %s AS share FROM generate_series(1, %s) AS i
        ) AS waiting
        """,
        [waiting, waiting],
    )
    cursor.execute(
        """
        INSERT INTO dbtasks_dbworker (
            worker_id, backend_name, hostname, pid, queues, threads, started_at, heartbeat_at
        )
        SELECT 'bench-w' || i, 'default', 'bench', 1000 + i,
            '["default", "low_priority"]', 125, now() - interval '1 hour', now()
        FROM generate_series(0, 3) AS i
        """
    )


def write_summaries() -> tuple[int, float]:
    """Write the hour's minute summaries as the workers would; return (minutes, ms each)."""
    from django.utils import timezone

    from dbtasks.backend import DatabaseBackend
    from dbtasks.compat import task_backends
    from dbtasks.worker.summaries import summarise_due_minutes

    backend = task_backends["default"]
    assert isinstance(backend, DatabaseBackend)
    started = time.perf_counter()
    written = summarise_due_minutes(backend, now=timezone.now(), limit=1000)
    elapsed = (time.perf_counter() - started) * 1000
    return written, round(elapsed / max(written, 1), 2)


def time_reads(repeat: int) -> dict[str, Any]:
    """Median and p95 (ms) of each read, after two untimed calls of each."""
    from django.contrib.auth import get_user_model
    from django.test import Client
    from django.utils import timezone

    from dbtasks.backend import DatabaseBackend
    from dbtasks.compat import task_backends
    from dbtasks.ops.health import HealthLimits
    from dbtasks.ops.health import check_health

    user_model = get_user_model()
    staff, _ = user_model.objects.get_or_create(
        username="ops-bench", defaults={"is_staff": True, "is_superuser": True}
    )
    client = Client()
    client.force_login(staff)
    backend = task_backends["default"]
    assert isinstance(backend, DatabaseBackend)

    def read(target: str) -> Callable[[], object]:
        if target == "health":
            return lambda: check_health(backend, limits=HealthLimits(), now=timezone.now())

        def get() -> None:
            response = client.get(target, headers={"host": "127.0.0.1"})
            if response.status_code != 200:
                raise RuntimeError(f"{target} answered {response.status_code}")

        return get

    medians: dict[str, float] = {}
    p95: dict[str, float] = {}
    for label, target in READS:
        call = read(target)
        for _ in range(2):
            call()
        timings = []
        for _ in range(repeat):
            started = time.perf_counter()
            call()
            timings.append((time.perf_counter() - started) * 1000)
        timings.sort()
        medians[label] = round(statistics.median(timings), 1)
        p95[label] = round(timings[min(len(timings) - 1, int(0.95 * len(timings)))], 1)
    return {"median_ms": medians, "p95_ms": p95}


# --- Standalone -------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ops_reads", description=__doc__)
    parser.add_argument("--sizes", default=",".join(str(size) for size in SIZES))
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--keep", action="store_true", help="Keep the ops_bench database.")
    args = parser.parse_args(argv)
    sizes = [int(size) for size in args.sizes.split(",")]

    server = os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    database_url = server.rsplit("/", 1)[0] + "/ops_bench"
    admin = server.rsplit("/", 1)[0] + "/postgres"
    subprocess.run(["psql", admin, "-qc", "DROP DATABASE IF EXISTS ops_bench"], check=True)
    subprocess.run(["psql", admin, "-qc", "CREATE DATABASE ops_bench"], check=True)
    try:
        env = {**os.environ, "DJANGO_SETTINGS_MODULE": "bench.web_settings"}
        env["BENCH_DATABASE_URL"] = database_url
        results: dict[str, Any] = {"started_at": datetime.now(UTC).isoformat(), "sizes": {}}
        run_phase(env, "migrate", {})
        for size in sizes:
            setup = run_phase(env, "fill", {"rows": size})
            timed = run_phase(env, "time", {"repeat": args.repeat})
            results["sizes"][size] = {"setup": setup, **timed}
            print(
                f"{size:>9,} finished: summaries {setup['summarise_ms_per_minute']} ms/minute; "
                + summary_line(timed),
                flush=True,
            )
        print_table(results["sizes"])
        out = Path(__file__).parent / "results" / f"ops_reads-{int(time.time())}.json"
        out.parent.mkdir(exist_ok=True)
        out.write_text(json.dumps(results, indent=2))
        print(f"raw numbers: {out}")
    finally:
        if not args.keep:
            subprocess.run(["psql", admin, "-qc", "DROP DATABASE IF EXISTS ops_bench"], check=True)
    return 0


def run_phase(env: dict[str, str], phase: str, phase_params: dict[str, Any]) -> dict[str, Any]:
    """One phase in a fresh Django process, as the full bench does (``bench.runner``)."""
    figure = "migrate" if phase == "migrate" else NAME
    arm = Arm(DBTASKS, "postgres", sys.executable, {})
    payload = {"arm": arm.to_json(), "params": phase_params, "django": True}
    done = subprocess.run(
        [sys.executable, "-m", "bench.runner", figure, phase],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    for line in reversed(done.stdout.splitlines()):
        if line.startswith(RESULT_MARK):
            result: dict[str, Any] = json.loads(line[len(RESULT_MARK) :])
            return result
    raise RuntimeError(f"{phase} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")


def print_table(sizes: dict[int, dict[str, Any]]) -> None:
    columns = list(sizes)
    print("\n| read | " + " | ".join(f"{size:,} finished" for size in columns) + " |")
    print("| --- |" + " ---: |" * len(columns))
    for label, _ in READS:
        cells = [
            f"{sizes[size]['median_ms'][label]:.1f} (p95 {sizes[size]['p95_ms'][label]:.1f})"
            for size in columns
        ]
        print(f"| {label} | " + " | ".join(cells) + " |")
    cells = [f"{sizes[size]['setup']['summarise_ms_per_minute']:.1f}" for size in columns]
    print("| summarise one minute (worker) | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    raise SystemExit(main())
