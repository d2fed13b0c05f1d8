"""Mistakes in a dbtasks backend's OPTIONS, each with the message that must name it.

One table for two tests: tests/dbtasks/unit/test_policy.py parses each case (and more
of its own), tests/dbtasks/integration/test_checks.py expects each as the single error
of ``manage.py check``. The messages assume the backend's QUEUES are QUEUES.
"""

from __future__ import annotations

import pytest

KEY = "TASKS['default']['OPTIONS']"
QUEUES = ("default", "low_priority")
TOP_KEYS = (
    "backoff_factor, backoff_max, concurrency, heartbeat_interval, heartbeat_timeout, "
    "listen_database, listen_notify, max_arguments_size, max_attempts, max_return_size, purge, "
    "queues, rate_limit, schedules, tasks, timeout"
)

# pytest.param(options, message, id=...): parametrize ("options", "message") with it.
OPTION_ERRORS = [
    pytest.param(
        {"listen_database": 5},
        f"{KEY}['listen_database'] must name a DATABASES alias (or be None), got 5.",
        id="listen-database-not-a-name",
    ),
    pytest.param(
        {"max_arguments_size": "10 MB"},
        f"{KEY}['max_arguments_size'] must be a number of bytes (a positive integer) "
        "or None, got '10 MB'.",
        id="text-max-arguments-size",
    ),
    pytest.param(
        {"max_return_size": 0},
        f"{KEY}['max_return_size'] must be a number of bytes (a positive integer) or None, got 0.",
        id="zero-max-return-size",
    ),
    pytest.param(
        {"max_attempts": -1},
        f"{KEY}['max_attempts'] must be a positive integer, got -1.",
        id="negative-max-attempts",
    ),
    pytest.param(
        {"max_attempts": 2.5},
        f"{KEY}['max_attempts'] must be a positive integer, got 2.5.",
        id="float-max-attempts",
    ),
    pytest.param(
        {"backoff_factor": "fast"},
        f"{KEY}['backoff_factor'] must be a number of at least 0, got 'fast'.",
        id="non-numeric-backoff",
    ),
    pytest.param(
        # A number in quotes is refused, not guessed at.
        {"backoff_factor": "3"},
        f"{KEY}['backoff_factor'] must be a number of at least 0, got '3'.",
        id="string-backoff",
    ),
    pytest.param(
        {"purge": {"finished": "ten days"}},
        f"{KEY}['purge']['finished'] must be a duration such as '10 days' or "
        "'30 seconds', got 'ten days'.",
        id="unparseable-duration",
    ),
    pytest.param(
        {"purge": {"unfinished": "30"}},
        f"{KEY}['purge']['unfinished'] needs a unit, got '30': write for example "
        "'30 seconds' or '30 days'.",
        id="duration-without-unit",
    ),
    pytest.param(
        {"queues": {"emails": {"max_attempts": 3}}},
        f"{KEY}['queues']['emails'] configures a queue that is not in "
        "TASKS['default']['QUEUES'] ['default', 'low_priority'].",
        id="override-for-unlisted-queue",
    ),
    pytest.param(
        {"max_attempt": 3},
        f"{KEY}['max_attempt'] is not a known option; known options are: {TOP_KEYS}.",
        id="unknown-key",
    ),
    pytest.param(
        {"queues": {"low_priority": {"timeout": "0 seconds"}}},
        f"{KEY}['queues']['low_priority']['timeout'] must be more than 0 (or None: no limit), "
        "got '0 seconds'.",
        id="zero-timeout",
    ),
    pytest.param(
        {"tasks": {"send": {"timeout": "5 seconds"}}},
        f"{KEY}['tasks'] keys must be dotted paths to tasks, got 'send'.",
        id="task-override-not-a-path",
    ),
    pytest.param(
        {"tasks": {"app.tasks.send": {"timeout": "5"}}},
        f"{KEY}['tasks']['app.tasks.send']['timeout'] needs a unit, got '5': write for "
        "example '5 seconds' or '5 days'.",
        id="task-timeout-without-unit",
    ),
    pytest.param(
        {"queues": {"low_priority": {"rate_limit": {"limit": 10}}}},
        f"{KEY}['queues']['low_priority']['rate_limit']['period'] is required: per how long.",
        id="rate-limit-without-period",
    ),
    pytest.param(
        {"rate_limit": {"limit": 0, "period": "1 second"}},
        f"{KEY}['rate_limit']['limit'] must be a positive integer, got 0.",
        id="rate-limit-zero",
    ),
    pytest.param(
        {"tasks": {"app.tasks.send": {"rate_limit": {"limit": 10, "period": "1"}}}},
        f"{KEY}['tasks']['app.tasks.send']['rate_limit']['period'] needs a unit, got '1': "
        "write for example '1 seconds' or '1 days'.",
        id="rate-limit-period-without-unit",
    ),
    pytest.param(
        {"rate_limit": {"limit": 10, "period": "0 seconds"}},
        f"{KEY}['rate_limit']['period'] must leave at least 1 ms between starts "
        "(period / limit), got '0 seconds' for 10 starts.",
        id="rate-limit-zero-period",
    ),
    pytest.param(
        {"rate_limit": {"limit": 10, "period": "1 second", "per": "tenant"}},
        f"{KEY}['rate_limit']['per'] is not a known option; known options are: key, limit, period.",
        id="rate-limit-unknown-key",
    ),
    pytest.param(
        {"rate_limit": {"limit": 10, "period": "1 second", "key": "tenant id"}},
        f"{KEY}['rate_limit']['key'] must be an argument name or a dotted path to a "
        "function of (args, kwargs), got 'tenant id'.",
        id="rate-limit-bad-key",
    ),
]
