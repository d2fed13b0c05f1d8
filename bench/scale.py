"""``python -m bench.scale``: dbtasks on a big table, one figure at a time.

    python -m bench.scale --url postgres://postgres@127.0.0.1:5432/claim_bench all
    python -m bench.scale --url sqlite:////tmp/claim_bench.sqlite3 claim --quick

Figures (docs/performance.md, "At scale"):

- ``claim``: the claim's median time by shape of the rows it does not take
  (finished rows; another queue's READY backlog; high-priority rows of its
  own queue scheduled for next week; a second served queue with a
  backlog of lower priority), at 10,000 and 1,000,000 of them.
- ``bulk``: ``enqueue_many()`` against ``enqueue()`` in a loop, per task.
- ``pickup``: enqueue -> task start for a worker dedicated to one queue,
  idle, with and without 1,000,000 READY rows in another queue.
- ``drain``: a 10,000 no-op backlog, a fresh worker process started, timed
  from its launch to the last outcome recorded, against django-tasks-db's
  ``db_worker --interval 0 --no-startup-delay`` (``bench/scale_peer.py``);
  ``--threads N`` runs each dbtasks worker with N task threads.

A Postgres database named in ``--url`` is created if missing and dropped at
the end unless ``--keep``. Everything runs in this process but the workers.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
FIGURES = ("claim", "bulk", "pickup", "drain")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__)
    parser.add_argument("--url", required=True, help="Database URL (postgres:// or sqlite:///)")
    parser.add_argument("--quick", action="store_true", help="100,000 rows instead of 1,000,000")
    parser.add_argument("--keep", action="store_true", help="Keep the Postgres database")
    parser.add_argument("--out", help="Also write the results as JSON to this file")
    parser.add_argument(
        "--processes",
        type=lambda value: [int(n) for n in value.split(",")],
        default=[1, 2],
        help="Worker processes for the drain, comma-separated (default: 1,2)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="dbtasks_worker --threads for the drain (default: 1, its default)",
    )
    parser.add_argument("figures", nargs="+", choices=[*FIGURES, "all"])
    return parser.parse_args(argv)


def setup(url: str, *, system: str = "dbtasks") -> None:
    """Point bench.settings at ``url`` (created if missing), set Django up, migrate."""
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "bench.settings",
            "BENCH_SYSTEM": system,
            "BENCH_DATABASE_URL": url,
            "BENCH_QUEUES": "default,other",
        }
    )
    if url.startswith("postgres"):
        postgres_admin(url, "CREATE DATABASE {name}", if_missing=True)
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0, interactive=False)


def postgres_admin(url: str, statement: str, *, if_missing: bool = False) -> None:
    """Run ``statement`` (with ``{name}``, the URL's database) on the server's postgres DB."""
    from urllib.parse import urlsplit

    import psycopg

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    with psycopg.connect(parts._replace(path="/postgres").geturl(), autocommit=True) as connection:
        exists = connection.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", [name]
        ).fetchone()
        if if_missing and exists:
            return
        connection.execute(statement.format(name=f'"{name}"'))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    figures = FIGURES if "all" in args.figures else tuple(args.figures)
    sys.path.insert(0, str(ROOT))
    setup(args.url)
    from bench import scale_claim
    from bench import scale_workers

    results: dict[str, Any] = {"url": args.url.split("@")[-1], "quick": args.quick}
    big = 100_000 if args.quick else 1_000_000
    try:
        if "claim" in figures:
            results["claim"] = scale_claim.claim_by_shape(sizes=(10_000, big))
        if "bulk" in figures:
            results["bulk"] = scale_claim.bulk_vs_loop(count=2_000)
        if "pickup" in figures:
            results["pickup"] = scale_workers.pickup(args.url, backlog=big)
        if "drain" in figures:
            results["drain"] = scale_workers.drain(
                args.url, count=10_000, processes=args.processes, threads=args.threads
            )
    finally:
        from django.db import connections

        connections.close_all()
        if args.url.startswith("postgres") and not args.keep:
            postgres_admin(args.url, "DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    text = json.dumps(results, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
