"""Unique tasks under real concurrency: enqueuers in several processes, one row per key."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from dbtasks.models import DBTaskResult
from tests.live import BASE_DIR
from tests.live import child_env
from tests.workers import database_url
from tests.workers import settings_module

pytestmark = pytest.mark.process

PROCESSES = 4
KEYS = 50


def test_concurrent_enqueuers_create_one_task_per_key(transactional_db, tmp_path):
    go = tmp_path / "go"
    # The settings of this run (Django 6's, or the 5.2 backport's in make test-django52).
    env = child_env(database_url(), DJANGO_SETTINGS_MODULE=settings_module())
    enqueuers = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.dbtasks.unique_enqueuer", str(KEYS), str(go)],
            cwd=BASE_DIR,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(PROCESSES)
    ]
    go.touch()
    created: list[str] = []
    for enqueuer in enqueuers:
        out, err = enqueuer.communicate(timeout=300)
        assert enqueuer.returncode == 0, err
        created += json.loads(out)

    # Every key was created exactly once, by one of the processes...
    assert sorted(created) == sorted(f"k{number}" for number in range(KEYS))
    # ...and the table holds one row per key.
    keys = list(DBTaskResult.objects.values_list("unique_key", flat=True))
    assert sorted(keys) == sorted(created)
