"""Every mistake in TASKS or the environment stops start-up, with a message that names it.

Each case starts ``manage.py check`` (and, where the worker has something of
its own to refuse, ``manage.py dbtasks_worker``) in a subprocess with one
mistake, exactly as a deployment would, and expects a non-zero exit and the
name of what was wrong. A mistake found by a system check comes out as the
check's clean report; one that makes the settings unreadable comes out as a
traceback whose last line is ``ImproperlyConfigured`` naming the variable.

The subprocesses never touch a database (they stop first), so this runs once,
in the SQLite pass. All cases start at once, a few at a time, to keep it short.
"""

from __future__ import annotations

import json
import os
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path

import pytest
from django.db import connection

from tests.live import PRODUCTION_ENV
from tests.live import manage
from tests.live import production_env

KEY = "TASKS['default']['OPTIONS']"
WORKER = ("dbtasks_worker", "--oneshot")
CHECK = ("check",)


IMPROPERLY_CONFIGURED = "django.core.exceptions.ImproperlyConfigured: "


@dataclass(frozen=True)
class Case:
    id: str
    env: dict[str, str]
    says: str  # what the output must contain ("" for the controls, which must succeed)
    # The worker runs the same system checks as `check`: it is started for a
    # few cases only, to show that it refuses too.
    commands: tuple[tuple[str, ...], ...] = (CHECK,)
    settings: str = "tests.settings"
    never_says: tuple[str, ...] = ()
    # None: a system check's report. Else how the traceback's last line starts
    # (settings that cannot be read at all, a backend that cannot be imported).
    last_line: str | None = None
    marks: tuple = field(default_factory=tuple)


def options(**values: object) -> dict[str, str]:
    return {"TEST_TASK_OPTIONS": json.dumps(values)}


CASES = [
    # --- TASKS --------------------------------------------------------------------
    Case(
        "max_attempts-zero",
        options(max_attempts=0),
        f"(dbtasks.E002) {KEY}['max_attempts'] must be a positive integer, got 0.",
        commands=(CHECK, WORKER),
    ),
    Case(
        "heartbeat-without-unit",
        options(heartbeat_interval="30"),
        f"{KEY}['heartbeat_interval'] needs a unit, got '30'",
    ),
    Case(
        "heartbeat-timeout-too-short",
        options(heartbeat_interval="1 second", heartbeat_timeout="1500 ms"),
        f"{KEY}['heartbeat_timeout'] must be more than twice heartbeat_interval",
    ),
    Case(
        "schedule-bad-cron",
        options(schedules={"nightly": {"task": "tests.tasks.noop", "cron": "61 * * * *"}}),
        f"{KEY}['schedules']['nightly']['cron'] must be a cron expression",
    ),
    Case(
        "backend-typo",
        {"TEST_TASK_BACKEND": json.dumps({"BACKEND": "dbtasks.backend.DatabaseBackends"})},
        "Could not find backend 'dbtasks.backend.DatabaseBackends'",
        commands=(CHECK, WORKER),
        # Django's own check_tasks raises: there is no backend to report it.
        last_line="django.tasks.exceptions.InvalidTaskBackend: ",
    ),
    Case(
        "queues-not-a-list",
        {"TEST_TASK_BACKEND": json.dumps({"QUEUES": "default"})},
        "(dbtasks.E002) TASKS['default']['QUEUES'] must be a list of queue names, got 'default'.",
    ),
    # --- The environment --------------------------------------------------------------
    Case(
        "ntfy-url-empty",
        {"NTFY_URL": ""},
        "(messagecenter.E001) NTFY_URL is not set, so notifications cannot be delivered.",
        commands=(CHECK, WORKER),
    ),
    Case(
        "ntfy-url-not-a-topic-url",
        {"NTFY_URL": "ntfy.sh/alerts"},
        "(messagecenter.E002) NTFY_URL 'ntfy.sh/alerts' is not an ntfy topic URL.",
    ),
    Case(
        "ntfy-timeout-not-a-number",
        {"NTFY_TIMEOUT": "soon"},
        "NTFY_TIMEOUT must be a positive number of seconds, got 'soon'.",
        last_line=IMPROPERLY_CONFIGURED,
    ),
    Case(
        "database-url-malformed",
        {"DATABASE_URL": "postgres://app:hunter2-secret@db.example:port/app"},
        "DATABASE_URL 'postgres://app:***@db.example:port/app' is not a database URL",
        never_says=("hunter2-secret",),
        last_line=IMPROPERLY_CONFIGURED,
    ),
    Case(
        "database-url-empty",
        {"DATABASE_URL": ""},
        "DATABASE_URL is set but empty.",
        last_line=IMPROPERLY_CONFIGURED,
    ),
    Case(
        "log-level-unknown",
        {"LOG_LEVEL": "chatty"},
        "LOG_LEVEL must be DEBUG, INFO, WARNING, ERROR or CRITICAL, got 'CHATTY'.",
        last_line=IMPROPERLY_CONFIGURED,
    ),
    # --- Production settings (DEBUG off), as the Procfile runs them ---------------------
    Case(
        "production-without-secret-key",
        {"SECRET_KEY": ""},
        "(messagecenter.E003) SECRET_KEY is not set",
        settings="messagecenter.settings",
        commands=(CHECK, WORKER),
    ),
    Case(
        "production-without-allowed-hosts",
        {"ALLOWED_HOSTS": ""},
        "(messagecenter.E004) ALLOWED_HOSTS is empty while DEBUG is off",
        settings="messagecenter.settings",
    ),
    Case(
        "production-hsts-not-a-number",
        {"SECURE_HSTS_SECONDS": "one year"},
        "SECURE_HSTS_SECONDS must be a whole number of at least 0, got 'one year'.",
        settings="messagecenter.settings",
        last_line=IMPROPERLY_CONFIGURED,
    ),
]
# The controls: the same start-up without the mistake succeeds.
CONTROLS = [
    Case("control-tests", {}, ""),
    Case("control-production", {}, "", settings="messagecenter.settings"),
]


def environment(case: Case, database: Path) -> dict[str, str]:
    if case.settings == "messagecenter.settings":
        env = production_env(DATABASE_URL=f"sqlite:///{database}")
    else:
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("DJANGO_", "DATABASE_", "NTFY_", "TEST_", "SECRET_"))
        }
        env |= {
            "DJANGO_SETTINGS_MODULE": "tests.settings",
            "DATABASE_URL": f"sqlite:///{database}",
            # DEBUG is off here: without its own token key, messagecenter.W001 would warn.
            "CHANNEL_TOKEN_KEY": PRODUCTION_ENV["CHANNEL_TOKEN_KEY"],
        }
    return env | case.env


def run(case: Case, command: tuple[str, ...], database: Path) -> subprocess.CompletedProcess[str]:
    return manage(*command, env=environment(case, database), timeout=120)


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory) -> dict[tuple[str, tuple[str, ...]], subprocess.CompletedProcess]:
    """Every (case, command) run once, a few at a time."""
    if connection.vendor != "sqlite":
        pytest.skip("start-up checks do not depend on the database: run in the SQLite pass")
    database = tmp_path_factory.mktemp("bad-configuration") / "never-created.sqlite3"
    runs = [(case, command) for case in [*CASES, *CONTROLS] for command in case.commands]
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda pair: run(pair[0], pair[1], database), runs))
    outcomes = {
        (case.id, command): result for (case, command), result in zip(runs, results, strict=True)
    }
    assert not database.exists()  # nothing got as far as opening the database
    return outcomes


@pytest.mark.parametrize(
    ("case", "command"),
    [
        pytest.param(case, command, id=f"{case.id}-{command[0]}", marks=case.marks)
        for case in CASES
        for command in case.commands
    ],
)
def test_start_up_stops_and_names_the_mistake(outcomes, case, command):
    result = outcomes[case.id, command]
    output = result.stdout + result.stderr

    assert result.returncode != 0, output
    assert case.says in output, output
    for secret in case.never_says:
        assert secret not in output
    if case.last_line is None:
        # A system check's clean report, not a crash.
        assert "System check identified" in output, output
        assert "Traceback" not in output, output
    else:
        assert output.strip().splitlines()[-1].startswith(case.last_line + case.says[:20]), output


@pytest.mark.parametrize("case", CONTROLS, ids=lambda case: case.id)
def test_without_the_mistake_start_up_succeeds(outcomes, case):
    result = outcomes[case.id, CHECK]
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout
