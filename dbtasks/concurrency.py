"""Concurrency limits: at most N tasks with the same key READY or RUNNING at once.

Declared in OPTIONS, per queue or per task path (Solid Queue's semaphores)::

    "OPTIONS": {
        "queues": {"emails": {"concurrency": {"limit": 5}}},
        "tasks": {
            "app.tasks.sync_tenant": {"concurrency": {"limit": 1, "key": "tenant_id"}},
        },
    }

The key is the queue (``queue:emails``) or the task (``task:app.tasks.sync_tenant``),
narrowed by ``key`` when given: the name of one of the task's arguments
(``tenant_id``: one slot per tenant) or the dotted path to a function
``(args, kwargs) -> str`` that computes it. A task whose key has a free slot
is written READY and takes the slot; the others are written BLOCKED and get
one, oldest (by priority, then time) first, when a slot is given back: in the
same transaction as the attempt that gives it back ends for good or goes to
wait for a retry. See ``dbtasks.sql.semaphores``.

``"fair": True`` shares the workers between keys: a task's priority then
orders it only among its own key's tasks (which BLOCKED row gets the next
slot), and in the claim every key's tasks rank alike, in the order they got
their slot. One key's backlog, urgent or not, then waits behind each other
key's next task instead of ahead of it.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.utils.module_loading import import_string

from dbtasks.option_values import OptionError
from dbtasks.option_values import mapping
from dbtasks.option_values import positive_int
from dbtasks.option_values import reject_unknown

MAX_KEY_LENGTH = 255
_KEYS = ("limit", "key", "fair")


@dataclass(frozen=True, slots=True)
class Concurrency:
    """A limit of ``limit`` slots per key; ``scope`` None means "the task's queue"."""

    limit: int
    # An argument name, or a dotted path to a function of (args, kwargs); None: one key.
    key: str | None = None
    scope: str | None = None
    # Priority orders only the key's own tasks; the claim ranks every key alike.
    fair: bool = False

    @property
    def key_function(self) -> bool:
        return self.key is not None and "." in self.key

    def key_for(
        self,
        func: Callable[..., Any],
        queue_name: str,
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
    ) -> str:
        """The semaphore key of one call: scope, then the computed part if any."""
        key = self.scope or f"queue:{queue_name}"
        if self.key is None:
            return key[:MAX_KEY_LENGTH]
        if self.key_function:
            value = import_string(self.key)(list(args), dict(kwargs))
        else:
            try:
                bound = inspect.signature(func).bind(*args, **kwargs)
            except TypeError as error:
                message = f"Cannot compute the concurrency key {self.key!r}: {error}"
                raise TypeError(message) from error
            bound.apply_defaults()
            if self.key not in bound.arguments:
                raise TypeError(
                    f"The concurrency key names argument {self.key!r}, which "
                    f"{func.__qualname__}() does not take."
                )
            value = bound.arguments[self.key]
        return f"{key}:{value}"[:MAX_KEY_LENGTH]


def parse_concurrency(value: object, *, key: str, scope: str | None) -> Concurrency | None:
    """Validate one ``"concurrency"`` option: {"limit": N, "key": ..., "fair": bool}."""
    if value is None:
        return None
    options = mapping(value, key=key)
    reject_unknown(options, _KEYS, key=key)
    if "limit" not in options:
        raise OptionError(f"{key}['limit'] is required: how many may run at once.")
    limit = positive_int(options["limit"], key=f"{key}['limit']")
    name = options.get("key")
    if name is not None and (
        not isinstance(name, str) or not all(part.isidentifier() for part in name.split("."))
    ):
        raise OptionError(
            f"{key}['key'] must be an argument name or a dotted path to a function "
            f"of (args, kwargs), got {name!r}."
        )
    fair = options.get("fair", False)
    if not isinstance(fair, bool):
        raise OptionError(f"{key}['fair'] must be True or False, got {fair!r}.")
    return Concurrency(limit=limit, key=name, scope=scope, fair=fair)


def check_key_function(concurrency: Concurrency) -> str | None:
    """The problem with a key function's dotted path, if any (for the system check)."""
    if not concurrency.key_function:
        return None
    assert concurrency.key is not None
    try:
        function = import_string(concurrency.key)
    except ImportError:
        return f"The concurrency key function {concurrency.key!r} cannot be imported."
    if not callable(function):
        return f"The concurrency key function {concurrency.key!r} is not callable."
    return None
