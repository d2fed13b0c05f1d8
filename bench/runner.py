"""The inside of one arm: ``python -m bench.runner FIGURE PHASE`` (JSON on stdin).

The orchestrator starts this with the arm's interpreter and environment
(settings module, database URL, Redis URLs). It sets Django up when the arm
uses it, calls ``bench.<FIGURE>.measure(arm, phase, params)`` and prints the
result as one JSON line after ``RESULT_MARK``.
"""

from __future__ import annotations

import importlib
import json
import signal
import sys
from typing import Any

from bench.harness import RESULT_MARK
from bench.harness import Arm


def stop_on_sigterm(signum: int, frame: object) -> None:
    # Unwind (and so stop the workers this process started) instead of dying.
    raise SystemExit(128 + signum)


def main() -> int:
    figure, phase = sys.argv[1], sys.argv[2]
    payload: dict[str, Any] = json.loads(sys.stdin.read())
    arm = Arm.from_json(payload["arm"])
    signal.signal(signal.SIGTERM, stop_on_sigterm)
    if arm.uses_django or payload.get("django"):
        import django

        django.setup()
    module = importlib.import_module(f"bench.{figure}")
    result = module.measure(arm, phase, payload.get("params", {}))
    sys.stdout.write(RESULT_MARK + json.dumps(result) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
