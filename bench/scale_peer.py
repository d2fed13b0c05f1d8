"""django-tasks-db's side of ``bench.scale``'s drain, run in bench/.venv-others.

    python -m bench.scale_peer --url URL --count 10000 --processes 1

Prints one JSON line. Its worker runs as a user tuning for throughput would
run it: ``db_worker --interval 0 --no-startup-delay``.
"""

from __future__ import annotations

import argparse
import json
import sys


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scale_peer")
    parser.add_argument("--url", required=True)
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--processes", type=int, default=1)
    args = parser.parse_args()
    from bench.scale import postgres_admin
    from bench.scale import setup

    setup(args.url, system="tasksdb")
    from bench.scale_workers import drain_here

    command = [sys.executable, "-m", "django", "db_worker", "--interval", "0"]
    command += ["--no-startup-delay", "--no-reload", "--verbosity", "0"]
    try:
        result = drain_here(count=args.count, processes=args.processes, command=command)
    finally:
        from django.db import connections

        connections.close_all()
        if args.url.startswith("postgres"):
            postgres_admin(args.url, "DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
