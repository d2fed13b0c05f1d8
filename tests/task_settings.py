"""The TASKS setting of the test suite, for tests/settings.py and tests/settings_django52.py.

Only the standard library here: settings_django52 runs on Django 5.2, where
messagecenter.settings (and so tests/settings.py) cannot be imported.
"""

from __future__ import annotations

import json
import os
from typing import Any


def task_options() -> dict[str, Any]:
    """The dbtasks backend's OPTIONS, sized for tests.

    Retries without waiting (0 ** n == 0 seconds), short heartbeats, no
    automatic purge: tests call it when they mean to. A test (or a worker
    subprocess) may override keys with TEST_TASK_OPTIONS='{"max_attempts": 1}'.
    """
    options: dict[str, Any] = {
        "max_attempts": 3,
        "backoff_factor": 0,
        "queues": {"low_priority": {"max_attempts": 5}},
        "purge": {"finished": "10 days", "unfinished": "20 days", "interval": None},
        "heartbeat_interval": "200 ms",
        "heartbeat_timeout": "2 seconds",
    }
    return options | json.loads(os.environ.get("TEST_TASK_OPTIONS", "{}"))


def tasks(immediate_backend: str) -> dict[str, dict[str, Any]]:
    """TASKS: dbtasks on three queues, and an immediate backend to compare with.

    ``immediate_backend`` is Django's own on Django 6, the django-tasks
    backport's on 5.2. A new dict each call, so a settings module may change it.
    """
    return {
        "default": {
            "BACKEND": "dbtasks.backend.DatabaseBackend",
            "QUEUES": ["default", "low_priority", "other"],
            "OPTIONS": task_options(),
        },
        "immediate": {"BACKEND": immediate_backend},
    }
