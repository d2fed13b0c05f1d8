"""OPTIONS parsing (dbtasks/options.py): the documented format, and every mistake named."""

from __future__ import annotations

from datetime import timedelta

import pytest

from dbtasks.options import OptionError
from dbtasks.options import PurgePolicy
from dbtasks.options import QueuePolicy
from dbtasks.options import parse_duration
from dbtasks.options import parse_options
from dbtasks.options import parse_queues
from tests.option_errors import KEY
from tests.option_errors import OPTION_ERRORS
from tests.option_errors import QUEUES


def test_the_architecture_example_parses():
    config = parse_options(
        "default",
        QUEUES,
        {
            "max_attempts": 10,
            "backoff_factor": 3,
            "queues": {"low_priority": {"max_attempts": 5}},
            "purge": {"finished": "10 days", "unfinished": "20 days"},
        },
    )

    assert config.default_policy == QueuePolicy(max_attempts=10, backoff_factor=3)
    assert config.policy("default") == QueuePolicy(max_attempts=10, backoff_factor=3)
    # An override changes its own keys and inherits the rest.
    assert config.policy("low_priority") == QueuePolicy(max_attempts=5, backoff_factor=3)
    assert config.purge == PurgePolicy(finished=timedelta(days=10), unfinished=timedelta(days=20))


def test_no_options_means_the_documented_defaults():
    config = parse_options("default", QUEUES, {})

    assert config.default_policy == QueuePolicy(max_attempts=10, backoff_factor=3)
    assert config.policies == {}
    assert config.purge == PurgePolicy(
        finished=timedelta(days=10),
        unfinished=timedelta(days=20),
        interval=timedelta(hours=1),
        batch_size=1000,
    )
    assert config.heartbeat_interval == timedelta(seconds=5)
    assert config.heartbeat_timeout == timedelta(seconds=30)
    assert config.listen_notify is True


def test_an_override_applies_to_its_queue_only():
    config = parse_options(
        "default", QUEUES, {"max_attempts": 4, "queues": {"low_priority": {"backoff_factor": 2}}}
    )

    assert config.policy("default") == QueuePolicy(max_attempts=4, backoff_factor=3)
    assert config.policy("low_priority") == QueuePolicy(max_attempts=4, backoff_factor=2)


def test_purge_keys_may_be_switched_off_with_none():
    config = parse_options("default", QUEUES, {"purge": {"finished": None, "interval": None}})

    assert config.purge.finished is None
    assert config.purge.interval is None
    assert config.purge.unfinished == timedelta(days=20)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        # The mistakes test_checks also expects from `manage.py check`, then more.
        *OPTION_ERRORS,
        pytest.param(
            {"max_attempts": 0},
            f"{KEY}['max_attempts'] must be a positive integer, got 0.",
            id="zero-max-attempts",
        ),
        pytest.param(
            {"max_attempts": "3"},
            f"{KEY}['max_attempts'] must be a positive integer, got '3'.",
            id="string-max-attempts",
        ),
        pytest.param(
            {"max_attempts": True},
            f"{KEY}['max_attempts'] must be a positive integer, got True.",
            id="bool-max-attempts",
        ),
        pytest.param(
            {"backoff_factor": None},
            f"{KEY}['backoff_factor'] must be a number of at least 0, got None.",
            id="none-backoff",
        ),
        pytest.param(
            {"backoff_factor": -2},
            f"{KEY}['backoff_factor'] must be a number of at least 0, got -2.",
            id="negative-backoff",
        ),
        pytest.param(
            {"backoff_factor": float("nan")},
            f"{KEY}['backoff_factor'] must be a number of at least 0, got nan.",
            id="nan-backoff",
        ),
        pytest.param(
            {"purge": {"finished": "10 dayz"}},
            f"{KEY}['purge']['finished'] must be a duration such as '10 days' or "
            "'30 seconds', got '10 dayz'.",
            id="unknown-unit",
        ),
        pytest.param(
            {"purge": {"finished": 30}},
            f"{KEY}['purge']['finished'] needs a unit, got 30: write for example "
            "'30 seconds' or '30 days'.",
            id="number-duration",
        ),
        pytest.param(
            {"purge": {"finished": "-1 days"}},
            f"{KEY}['purge']['finished'] must be a duration such as '10 days' or "
            "'30 seconds', got '-1 days'.",
            id="negative-duration",
        ),
        pytest.param(
            {"purge": {"finished": "99999999999 days"}},
            f"{KEY}['purge']['finished'] is too long, got '99999999999 days'.",
            id="overflowing-duration",
        ),
        pytest.param(
            {"purge": {"batch_size": 0}},
            f"{KEY}['purge']['batch_size'] must be a positive integer, got 0.",
            id="zero-batch-size",
        ),
        pytest.param(
            {"purge": "10 days"},
            f"{KEY}['purge'] must be a dict, got '10 days'.",
            id="purge-not-a-dict",
        ),
        pytest.param(
            {"queues": {"low_priority": {"max_attempts": "3"}}},
            f"{KEY}['queues']['low_priority']['max_attempts'] must be a positive integer, got '3'.",
            id="bad-override-value",
        ),
        pytest.param(
            {"queues": {"low_priority": {"retries": 3}}},
            f"{KEY}['queues']['low_priority']['retries'] is not a known option; "
            "known options are: backoff_factor, backoff_max, concurrency, max_attempts, "
            "rate_limit, timeout.",
            id="unknown-override-key",
        ),
        pytest.param(
            {"purge": {"keep": "1 day"}},
            f"{KEY}['purge']['keep'] is not a known option; "
            "known options are: batch_size, finished, interval, unfinished.",
            id="unknown-purge-key",
        ),
        pytest.param(
            {"heartbeat_interval": "1 second", "heartbeat_timeout": "2 seconds"},
            f"{KEY}['heartbeat_timeout'] must be more than twice heartbeat_interval "
            "(0:00:01), got 0:00:02: a worker that is merely slow to heartbeat would be "
            "taken for dead.",
            id="heartbeat-timeout-too-short",
        ),
        pytest.param(
            {"listen_notify": "yes"},
            f"{KEY}['listen_notify'] must be True or False, got 'yes'.",
            id="listen-notify-not-bool",
        ),
        pytest.param(
            {"schedules": {"nightly": {"task": "tests.tasks.noop", "cron": "every night"}}},
            f"{KEY}['schedules']['nightly']['cron'] must be a cron expression such as "
            "'*/5 * * * *', got 'every night'.",
            id="bad-cron",
        ),
        pytest.param(
            [("max_attempts", 3)],
            f"{KEY} must be a dict, got [('max_attempts', 3)].",
            id="options-not-a-dict",
        ),
    ],
)
def test_a_mistake_names_the_key_and_the_value(options, message):
    with pytest.raises(OptionError) as excinfo:
        parse_options("default", QUEUES, options)

    assert str(excinfo.value) == message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10 days", timedelta(days=10)),
        ("30 seconds", timedelta(seconds=30)),
        ("500 ms", timedelta(milliseconds=500)),
        ("1.5 hours", timedelta(minutes=90)),
        (" 2 Weeks ", timedelta(weeks=2)),
        ("1 minute", timedelta(minutes=1)),
        ("0 s", timedelta(0)),
    ],
)
def test_parse_duration_reads_a_number_and_a_unit(text, expected):
    assert parse_duration(text, key="k") == expected


def test_parse_duration_takes_a_timedelta_as_is():
    assert parse_duration(timedelta(hours=2), key="k") == timedelta(hours=2)


def test_parse_duration_refuses_a_negative_timedelta():
    with pytest.raises(OptionError) as excinfo:
        parse_duration(timedelta(seconds=-1), key="k")

    assert (
        str(excinfo.value)
        == "k must not be negative, got datetime.timedelta(days=-1, seconds=86399)."
    )


@pytest.mark.parametrize(
    ("factor", "failed_attempt", "seconds"),
    [
        # The worked sequence of QueuePolicy's docstring and the README.
        (3, 1, 3),
        (3, 2, 9),
        (3, 3, 27),
        (3, 4, 81),
        (2, 1, 2),
        (2, 5, 32),
        (1, 7, 1),
        (0, 1, 0),
        (0, 9, 0),
        (0.5, 1, 0.5),
    ],
)
def test_backoff_is_the_factor_to_the_power_of_the_failed_attempt(factor, failed_attempt, seconds):
    policy = QueuePolicy(backoff_factor=factor)

    assert policy.backoff(failed_attempt) == timedelta(seconds=seconds)


def test_backoff_max_caps_the_wait():
    policy = QueuePolicy(backoff_factor=3, backoff_max=timedelta(seconds=10))

    assert [policy.backoff(n) for n in (1, 2, 3, 4)] == [
        timedelta(seconds=3),
        timedelta(seconds=9),
        timedelta(seconds=10),
        timedelta(seconds=10),
    ]


def test_backoff_does_not_overflow_after_many_attempts():
    policy = QueuePolicy(backoff_factor=10, max_attempts=10_000)

    assert policy.backoff(5000) == timedelta(seconds=10**12)


@pytest.mark.parametrize(
    ("max_attempts", "attempts_made", "retry"),
    [(3, 1, True), (3, 2, True), (3, 3, False), (1, 1, False), (10, 9, True), (10, 10, False)],
)
def test_max_attempts_counts_every_run_the_first_included(max_attempts, attempts_made, retry):
    assert QueuePolicy(max_attempts=max_attempts).should_retry(attempts_made) is retry


@pytest.mark.parametrize(
    ("queues", "message"),
    [
        pytest.param(
            "default",
            "TASKS['default']['QUEUES'] must be a list of queue names, got 'default'.",
            id="a-string",
        ),
        pytest.param(
            {"default": 1},
            "TASKS['default']['QUEUES'] must be a list of queue names, got {'default': 1}.",
            id="a-dict",
        ),
        pytest.param(
            ["default", 3],
            "TASKS['default']['QUEUES'] must hold queue names (non-empty strings), got 3.",
            id="not-a-name",
        ),
        pytest.param(
            ["default", " "],
            "TASKS['default']['QUEUES'] must hold queue names (non-empty strings), got ' '.",
            id="blank-name",
        ),
    ],
)
def test_queues_must_be_a_list_of_names(queues, message):
    with pytest.raises(OptionError) as excinfo:
        parse_queues("default", queues)

    assert str(excinfo.value) == message


@pytest.mark.parametrize("queues", [["default", "emails"], ("default",), []])
def test_queues_as_django_takes_them(queues):
    # An empty list is Django's "any queue name".
    assert parse_queues("default", queues) == set(queues)


def test_a_task_override_layers_on_its_queues_policy():
    options = parse_options(
        "default",
        QUEUES,
        {
            "timeout": "1 minute",
            "queues": {"low_priority": {"max_attempts": 5}},
            "tasks": {"app.tasks.slow": {"timeout": "10 minutes"}},
        },
    )

    slow_low = options.policy("low_priority", "app.tasks.slow")
    assert (slow_low.max_attempts, slow_low.timeout) == (5, timedelta(minutes=10))
    assert options.policy("default", "app.tasks.slow").timeout == timedelta(minutes=10)
    assert options.policy("default", "app.tasks.other").timeout == timedelta(minutes=1)
    # A queue QUEUES does not list (QUEUES empty: any name) gets the same layering.
    assert options.policy("elsewhere", "app.tasks.slow").timeout == timedelta(minutes=10)


def test_rate_limits_per_queue_and_task_are_parsed_once():
    from dbtasks.rate_limits import RateLimit

    config = parse_options(
        "default",
        QUEUES,
        {
            "queues": {"low_priority": {"rate_limit": {"limit": 10, "period": "1s"}}},
            "tasks": {
                "app.tasks.sync": {
                    "rate_limit": {"limit": 60, "period": "1 minute", "key": "tenant_id"}
                }
            },
        },
    )

    queue_limit = config.policy("low_priority").rate_limit
    assert queue_limit == RateLimit(limit=10, period=timedelta(seconds=1))
    assert queue_limit.interval == timedelta(milliseconds=100)
    assert config.policy("default").rate_limit is None
    task_limit = config.policy("default", "app.tasks.sync").rate_limit
    assert task_limit == RateLimit(
        limit=60, period=timedelta(minutes=1), key="tenant_id", scope="task:app.tasks.sync"
    )
    # A task's own limit replaces its queue's.
    assert config.policy("low_priority", "app.tasks.sync").rate_limit == task_limit
    # None switches a queue's limit off for one task.
    config = parse_options(
        "default",
        QUEUES,
        {
            "rate_limit": {"limit": 1, "period": "1 hour"},
            "tasks": {"app.tasks.urgent": {"rate_limit": None}},
        },
    )
    assert config.policy("default").rate_limit == RateLimit(limit=1, period=timedelta(hours=1))
    assert config.policy("default", "app.tasks.urgent").rate_limit is None
