"""``python -m bench``: every arm, every figure, one run.

Runs the figures one after the other; within a figure, each round measures
every arm once, starting with a different arm each round. Prints a table of
medians (min-max over the rounds) with each arm's ratio to dbtasks on the
same store, checks the performance targets, and writes the raw numbers to
``bench/results/<timestamp>.json``. See docs/performance.md.

    python -m bench                      # everything (make bench)
    python -m bench --quick              # smaller sizes, one round: a smoke run
    python -m bench --only drain,pickup  # some figures
    python -m bench --arms dbtasks       # some arms (substring of their names)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import signal
import sys
import time
from datetime import UTC
from datetime import datetime
from pathlib import Path
from typing import Any

from bench import claim_latency
from bench import drain
from bench import enqueue
from bench import memory
from bench import ops_reads
from bench import pickup
from bench import poll_http
from bench import statements
from bench.environment import DEFAULT_REDIS_RESULTS_URL
from bench.environment import DEFAULT_REDIS_URL
from bench.environment import LoadMonitor
from bench.environment import PostgresDatabases
from bench.environment import machine
from bench.environment import others_python
from bench.environment import postgres_status
from bench.environment import postgres_url
from bench.environment import redis_command
from bench.environment import redis_status
from bench.environment import scratch_directory
from bench.environment import versions
from bench.harness import BENCH_DIR
from bench.harness import CELERY
from bench.harness import DBTASKS
from bench.harness import TASKSDB
from bench.harness import Arm
from bench.orchestrator import Bench
from bench.report import summarise
from bench.report import table
from bench.report import targets
from bench.report import targets_table

FIGURES = (enqueue, drain, pickup, statements, claim_latency, poll_http, memory, ops_reads)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    names = [module.NAME for module in FIGURES]
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="Smaller sizes and one round: a smoke run."
    )
    parser.add_argument(
        "--rounds", type=int, help="Rounds per figure (default: 3, or 1 with --quick)."
    )
    parser.add_argument(
        "--only",
        type=lambda value: [name.strip() for name in value.split(",") if name.strip()],
        help=f"Comma-separated figures to run, of: {', '.join(names)} (default: all).",
    )
    parser.add_argument(
        "--arms",
        type=lambda value: [name.strip() for name in value.split(",") if name.strip()],
        help="Comma-separated substrings of the arm names to run, e.g. 'dbtasks,celery' "
        "(default: all).",
    )
    parser.add_argument(
        "--memory-arms",
        type=lambda value: [name.strip() for name in value.split(",") if name.strip()],
        help="Arms for the 100,000-task memory figure: substrings of their names, or 'all' "
        "(default: dbtasks).",
    )
    parser.add_argument(
        "--output", type=Path, help="Where to write the JSON (default: bench/results/)."
    )
    parser.add_argument(
        "--keep", action="store_true", help="Keep the bench databases and files afterwards."
    )
    args = parser.parse_args(argv)
    unknown = set(args.only or []) - set(names)
    if unknown:
        parser.error(
            f"unknown figure(s): {', '.join(sorted(unknown))}; choose from {', '.join(names)}"
        )
    if args.rounds is None:
        args.rounds = 1 if args.quick else 3
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    return args


def build_arms(
    args: argparse.Namespace, skipped: dict[str, str]
) -> tuple[list[Arm], dict[str, Any]]:
    """The arms this machine can run, and what was found (stores, environments)."""
    redis_url = os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS_URL)
    results_url = os.environ.get("BENCH_REDIS_RESULTS_URL", DEFAULT_REDIS_RESULTS_URL)
    common = {"BENCH_REDIS_URL": redis_url, "BENCH_REDIS_RESULTS_URL": results_url}

    others, others_why = others_python()
    pg_url = postgres_url()
    pg_version, pg_why = postgres_status(pg_url)
    redis_version, redis_why = redis_status(redis_url)
    found = {
        "others_python": others,
        "postgres_url": pg_url,
        "postgres": pg_version,
        "redis_url": redis_url,
        "redis_results_url": results_url,
        "redis": redis_version,
    }

    candidates: list[tuple[Arm | None, str, str]] = []
    for store in ("sqlite", "postgres"):
        store_why = "" if store == "sqlite" or pg_version else f"Postgres at {pg_url}: {pg_why}"
        candidates.append(
            (
                Arm(DBTASKS, store, sys.executable, {**common, "BENCH_SYSTEM": DBTASKS}),
                f"dbtasks/{store}",
                store_why,
            )
        )
        candidates.append(
            (
                Arm(TASKSDB, store, others, {**common, "BENCH_SYSTEM": TASKSDB})
                if others
                else None,
                f"django-tasks-db/{store}",
                store_why or ("" if others else others_why),
            )
        )
    celery_why = "" if redis_version else f"Redis at {redis_url}: {redis_why}"
    candidates.append(
        (
            Arm(CELERY, "redis", others, common) if others else None,
            "celery/redis",
            celery_why or ("" if others else others_why),
        )
    )

    arms = []
    for arm, name, why in candidates:
        if args.arms and not any(part in name for part in args.arms):
            continue
        if arm is None or why:
            skipped[name] = why
            print(f"  skipped {name}: {why}", flush=True)
            continue
        arms.append(arm)
    return arms, found


def recorded_command(command: str) -> str:
    """How this run was started: ``make bench`` (with its BENCH_ARGS) or the python command."""
    make = os.environ.get("BENCH_COMMAND")
    if not make:
        return command
    return make + (f" BENCH_ARGS={shlex.quote(shlex.join(sys.argv[1:]))}" if sys.argv[1:] else "")


def interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # Stop cleanly (workers, databases) on Ctrl-C and on SIGTERM, even when
    # started in the background, where the shell ignores SIGINT.
    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, interrupt)
    figures = [module for module in FIGURES if not args.only or module.NAME in args.only]
    started = time.time()
    command = "python -m bench" + (" " + shlex.join(sys.argv[1:]) if sys.argv[1:] else "")
    print(f"{command}: {', '.join(m.NAME for m in figures)}; {args.rounds} round(s)", flush=True)
    print(f"  load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)

    skipped: dict[str, str] = {}
    arms, found = build_arms(args, skipped)
    print(f"  arms: {', '.join(arm.name for arm in arms) or 'none'}", flush=True)
    results: dict[str, Any] = {
        "schema": 1,
        "command": recorded_command(command),
        "argv": sys.argv[1:],
        "started_at": datetime.fromtimestamp(started, UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "versions": versions(found["others_python"], found["postgres"], found["redis"]),
        "environment": found,
        "settings": {"quick": args.quick, "rounds": args.rounds},
        "load": {"before": os.getloadavg()},
        "skipped": skipped,
        "figures": {},
    }
    postgres = PostgresDatabases(found["postgres_url"]) if found["postgres"] else None
    with LoadMonitor() as load, scratch_directory(args.keep) as scratch:
        bench = Bench(
            arms=arms,
            rounds=args.rounds,
            quick=args.quick,
            scratch=scratch,
            postgres=postgres,
            results=results,
            skipped=skipped,
            memory_arms=args.memory_arms,
        )
        try:
            for module in figures:
                print(f"\n{module.TITLE}", flush=True)
                figure_started = time.monotonic()
                load_before = os.getloadavg()[0]
                bench.refresh_databases()
                module.run(bench)
                bench.figure_results(module.NAME).update(
                    {
                        "seconds": round(time.monotonic() - figure_started, 1),
                        "load1": [round(load_before, 2), round(os.getloadavg()[0], 2)],
                    }
                )
        except KeyboardInterrupt:
            print("\nInterrupted: reporting what was measured so far.", file=sys.stderr)
            results["interrupted"] = True
        finally:
            if postgres is not None and not args.keep:
                postgres.drop_all()
            if found["redis"] and any(arm.system == CELERY for arm in arms):
                for url in (found["redis_url"], found["redis_results_url"]):
                    with contextlib.suppress(OSError):
                        redis_command(url, "FLUSHDB")
        results["load"] |= {"during": load.summary(), "after": os.getloadavg()}

    results["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    results["duration_s"] = round(time.time() - started, 1)
    results["summary"] = summarise(results, figures)
    results["targets"] = targets(results)

    if args.quick:
        print("\n(--quick: smaller sizes than the labels say, one round; see params in the JSON.)")
    print("\n" + table(results, figures))
    print("### Performance targets\n")
    print(targets_table([t for t in results["targets"] if t["met"] is not None]))
    during = results["load"]["during"]
    print(
        f"\n{results['machine']['nproc']} CPUs ({results['machine']['cpu_model']}), "
        f"{results['machine']['ram_gib']} GiB; load average during the run "
        f"{during['load1_min']}-{during['load1_max']} (median {during['load1_median']}); "
        f"took {results['duration_s'] / 60:.1f} min."
    )
    shown = ("python", "django", "sqlite", "postgres", "redis_server", "celery", "django_tasks_db")
    known = results["versions"]
    print("Versions: " + ", ".join(f"{key} {known[key]}" for key in shown if key in known))
    print(f"Command: {results['command']}")
    output = args.output or BENCH_DIR / "results" / (
        datetime.fromtimestamp(started, UTC).strftime("%Y%m%dT%H%M%SZ") + ".json"
    )
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(f"Raw numbers: {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
