"""A process that races others to enqueue unique tasks (tests/dbtasks/process/test_unique.py).

Run as ``python -m tests.dbtasks.unique_enqueuer KEYS GO_FILE``: it waits until
GO_FILE exists (so every process starts at once), enqueues ``noop`` under the
keys ``k0`` .. ``k<KEYS-1>``, and prints the keys it created, as JSON.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import django


def main(keys: int, go: Path) -> None:
    django.setup()
    from dbtasks.unique import enqueue_unique
    from tests import tasks

    while not go.exists():
        time.sleep(0.005)
    created = []
    for number in range(keys):
        _, was_created = enqueue_unique(tasks.noop, f"k{number}")
        if was_created:
            created.append(f"k{number}")
    print(json.dumps(created))  # noqa: T201 - the test reads it


if __name__ == "__main__":
    main(int(sys.argv[1]), Path(sys.argv[2]))
