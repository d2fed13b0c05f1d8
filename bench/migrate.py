"""Set up an arm's database: ``manage.py migrate`` with the arm's settings."""

from __future__ import annotations

from typing import Any

from bench.harness import Arm


def measure(arm: Arm, phase: str, params: dict[str, Any]) -> dict[str, Any]:
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)
    return {"migrated": 1}
