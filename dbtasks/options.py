"""Step 6 of the tour: the backend's OPTIONS, parsed and validated once.

``parse_options()`` turns ``TASKS[alias]["OPTIONS"]`` into small frozen
dataclasses. Everything else (the backend, the worker, the purge command, the
admin) reads these, never the raw dictionary. Every mistake raises
``OptionError`` naming the exact key and the value that was wrong; the
backend turns it into a system-check error (``dbtasks.E002``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from datetime import timedelta
from typing import Any

from dbtasks.concurrency import Concurrency
from dbtasks.concurrency import parse_concurrency
from dbtasks.option_values import OptionError
from dbtasks.option_values import factor as _factor
from dbtasks.option_values import mapping as _mapping
from dbtasks.option_values import optional_duration as _optional_duration
from dbtasks.option_values import optional_positive_duration as _positive_duration
from dbtasks.option_values import optional_size as _optional_size
from dbtasks.option_values import parse_duration
from dbtasks.option_values import parse_queues
from dbtasks.option_values import positive_int as _positive_int
from dbtasks.option_values import reject_unknown as _reject_unknown
from dbtasks.purge_options import PurgePolicy
from dbtasks.purge_options import parse_purge
from dbtasks.rate_limits import RateLimit
from dbtasks.rate_limits import parse_rate_limit
from dbtasks.schedule_options import Schedule
from dbtasks.schedule_options import parse_schedule

__all__ = ["BackendOptions", "OptionError", "PurgePolicy", "QueuePolicy", "Schedule"]
__all__ += ["parse_duration", "parse_options", "parse_queues"]


@dataclass(frozen=True, slots=True)
class QueuePolicy:
    """How often a task on one queue is tried, and how long it waits between.

    ``max_attempts`` counts every run, the first included: 1 means never retry.

    After failed attempt *n* the task waits ``backoff_factor ** n`` seconds
    (capped at ``backoff_max`` when set) before it may run again. With the
    factor 3: 3 s after the first failure, then 9 s, 27 s, 81 s, 243 s...
    A factor of 1 retries every second; 0 retries at once.

    ``timeout``: an attempt still running after it is stopped and fails
    with ``TaskTimeout`` (None: no limit).
    """

    max_attempts: int = 10
    backoff_factor: float = 3
    backoff_max: timedelta | None = None
    timeout: timedelta | None = None
    # At most this many READY or RUNNING at once per key (dbtasks.concurrency).
    concurrency: Concurrency | None = None
    # At most this many starts per period per key (dbtasks.rate_limits).
    rate_limit: RateLimit | None = None

    def backoff(self, failed_attempt: int) -> timedelta:
        """Return how long to wait after failed attempt number ``failed_attempt``."""
        try:
            seconds = float(self.backoff_factor) ** failed_attempt
        except OverflowError:
            seconds = math.inf
        if self.backoff_max is not None:
            seconds = min(seconds, self.backoff_max.total_seconds())
        # timedelta cannot hold more than ~2.7 million years; nobody waits that long.
        return timedelta(seconds=min(seconds, 10**12))

    def should_retry(self, attempts_made: int) -> bool:
        """Return whether a task that has run ``attempts_made`` times may run again."""
        return attempts_made < self.max_attempts


# 10 MiB: far more than ids and small documents need, far less than what
# slows every read of the row (the admin, get_result()) to seconds.
DEFAULT_MAX_PAYLOAD_SIZE = 10 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class BackendOptions:
    """Everything the backend's OPTIONS say, validated."""

    default_policy: QueuePolicy
    policies: Mapping[str, QueuePolicy]
    purge: PurgePolicy
    heartbeat_interval: timedelta = timedelta(seconds=5)
    heartbeat_timeout: timedelta = timedelta(seconds=30)
    schedules: tuple[Schedule, ...] = ()
    listen_notify: bool = True
    # The DATABASES alias workers LISTEN on (None: the tasks' own): a direct
    # connection when the tasks' database is behind PgBouncer.
    listen_database: str | None = None
    # The most a task's arguments and return value may take as JSON (bytes).
    max_arguments_size: int | None = DEFAULT_MAX_PAYLOAD_SIZE
    max_return_size: int | None = DEFAULT_MAX_PAYLOAD_SIZE
    # OPTIONS['tasks']: per task path, the keys that override its queue's policy.
    task_overrides: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    # Those overrides applied to each configured queue, worked out once.
    task_policies: Mapping[tuple[str, str], QueuePolicy] = field(default_factory=dict)

    def policy(self, queue_name: str, task_path: str | None = None) -> QueuePolicy:
        """Return the policy for ``task_path`` on ``queue_name`` (the queue's, if no override)."""
        if task_path is not None and task_path in self.task_overrides:
            policy = self.task_policies.get((queue_name, task_path))
            if policy is None:  # a queue QUEUES does not list (QUEUES empty: any name)
                policy = _queue_policy(
                    self.task_overrides[task_path],
                    key=task_path,
                    base=self.policy(queue_name),
                    scope=f"task:{task_path}",
                )
            return policy
        return self.policies.get(queue_name, self.default_policy)


_QUEUE_KEYS = (
    "max_attempts",
    "backoff_factor",
    "backoff_max",
    "timeout",
    "concurrency",
    "rate_limit",
)
_TOP_KEYS = (
    *_QUEUE_KEYS,
    "queues",
    "tasks",
    "purge",
    "heartbeat_interval",
    "heartbeat_timeout",
    "schedules",
    "listen_notify",
    "listen_database",
    "max_arguments_size",
    "max_return_size",
)


def _queue_policy(
    options: Mapping[str, Any], *, key: str, base: QueuePolicy, scope: str | None = None
) -> QueuePolicy:
    concurrency, rate_limit = base.concurrency, base.rate_limit
    if "concurrency" in options:
        concurrency = parse_concurrency(
            options["concurrency"], key=f"{key}['concurrency']", scope=scope
        )
    if "rate_limit" in options:
        rate_limit = parse_rate_limit(
            options["rate_limit"], key=f"{key}['rate_limit']", scope=scope
        )
    return QueuePolicy(
        max_attempts=_positive_int(
            options.get("max_attempts", base.max_attempts), key=f"{key}['max_attempts']"
        ),
        backoff_factor=_factor(
            options.get("backoff_factor", base.backoff_factor),
            key=f"{key}['backoff_factor']",
        ),
        backoff_max=_optional_duration(
            options.get("backoff_max", base.backoff_max), key=f"{key}['backoff_max']"
        ),
        timeout=_positive_duration(options.get("timeout", base.timeout), key=f"{key}['timeout']"),
        concurrency=concurrency,
        rate_limit=rate_limit,
    )


def _task_overrides(
    options: Mapping[str, Any],
    *,
    key: str,
    policies: Mapping[str, QueuePolicy],
    default: QueuePolicy,
) -> tuple[dict[str, Mapping[str, Any]], dict[tuple[str, str], QueuePolicy]]:
    """OPTIONS['tasks']: each task's overrides, and its policy on every configured queue."""
    overrides: dict[str, Mapping[str, Any]] = {}
    task_policies: dict[tuple[str, str], QueuePolicy] = {}
    for task_path, task_options in options.items():
        task_key = f"{key}[{task_path!r}]"
        # OPTIONS is user input: a key typed str may be anything at run time.
        if not isinstance(task_path, str) or "." not in task_path:  # type: ignore[redundant-expr]
            raise OptionError(f"{key} keys must be dotted paths to tasks, got {task_path!r}.")
        task_options = _mapping(task_options, key=task_key)
        _reject_unknown(task_options, _QUEUE_KEYS, key=task_key)
        scope = f"task:{task_path}"
        # Validates every value.
        _queue_policy(task_options, key=task_key, base=default, scope=scope)
        overrides[task_path] = dict(task_options)
        for queue_name, policy in policies.items():
            task_policies[(queue_name, task_path)] = _queue_policy(
                task_options, key=task_key, base=policy, scope=scope
            )
    return overrides, task_policies


def parse_options(alias: str, queues: Iterable[str], options: object) -> BackendOptions:
    """Validate ``TASKS[alias]["OPTIONS"]`` and return it as ``BackendOptions``."""
    key = f"TASKS[{alias!r}]['OPTIONS']"
    options = _mapping(options, key=key)
    _reject_unknown(options, _TOP_KEYS, key=key)
    queue_names = set(queues)

    default_policy = _queue_policy(options, key=key, base=QueuePolicy())

    overrides = _mapping(options.get("queues", {}), key=f"{key}['queues']")
    policies: dict[str, QueuePolicy] = {}
    for queue_name, queue_options in overrides.items():
        queue_key = f"{key}['queues'][{queue_name!r}]"
        if queue_name not in queue_names:
            raise OptionError(
                f"{queue_key} configures a queue that is not in "
                f"TASKS[{alias!r}]['QUEUES'] {sorted(queue_names)}."
            )
        queue_options = _mapping(queue_options, key=queue_key)
        _reject_unknown(queue_options, _QUEUE_KEYS, key=queue_key)
        policies[queue_name] = _queue_policy(queue_options, key=queue_key, base=default_policy)

    task_overrides, task_policies = _task_overrides(
        _mapping(options.get("tasks", {}), key=f"{key}['tasks']"),
        key=f"{key}['tasks']",
        policies={name: policies.get(name, default_policy) for name in queue_names},
        default=default_policy,
    )

    purge = parse_purge(
        _mapping(options.get("purge", {}), key=f"{key}['purge']"), key=f"{key}['purge']"
    )

    heartbeat_interval = parse_duration(
        options.get("heartbeat_interval", "5 seconds"), key=f"{key}['heartbeat_interval']"
    )
    heartbeat_timeout = parse_duration(
        options.get("heartbeat_timeout", "30 seconds"), key=f"{key}['heartbeat_timeout']"
    )
    if heartbeat_interval <= timedelta(0):
        raise OptionError(
            f"{key}['heartbeat_interval'] must be more than 0, got {heartbeat_interval}."
        )
    if heartbeat_timeout <= heartbeat_interval * 2:
        raise OptionError(
            f"{key}['heartbeat_timeout'] must be more than twice heartbeat_interval "
            f"({heartbeat_interval}), got {heartbeat_timeout}: a worker that is merely "
            "slow to heartbeat would be taken for dead."
        )

    schedules_option = _mapping(options.get("schedules", {}), key=f"{key}['schedules']")
    schedules = tuple(
        parse_schedule(name, value, key=f"{key}['schedules']", queues=queue_names)
        for name, value in schedules_option.items()
    )

    listen_notify = options.get("listen_notify", True)
    if not isinstance(listen_notify, bool):
        raise OptionError(f"{key}['listen_notify'] must be True or False, got {listen_notify!r}.")

    listen_database = options.get("listen_database")
    if listen_database is not None and (
        not isinstance(listen_database, str) or not listen_database
    ):
        raise OptionError(
            f"{key}['listen_database'] must name a DATABASES alias (or be None), "
            f"got {listen_database!r}."
        )

    return BackendOptions(
        default_policy=default_policy,
        policies=policies,
        purge=purge,
        heartbeat_interval=heartbeat_interval,
        heartbeat_timeout=heartbeat_timeout,
        schedules=schedules,
        listen_notify=listen_notify,
        listen_database=listen_database,
        max_arguments_size=_optional_size(
            options.get("max_arguments_size", DEFAULT_MAX_PAYLOAD_SIZE),
            key=f"{key}['max_arguments_size']",
        ),
        max_return_size=_optional_size(
            options.get("max_return_size", DEFAULT_MAX_PAYLOAD_SIZE),
            key=f"{key}['max_return_size']",
        ),
        task_overrides=task_overrides,
        task_policies=task_policies,
    )
