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
from typing import ClassVar

from django.utils.module_loading import import_string

from dbtasks.option_values import OptionError
from dbtasks.option_values import mapping
from dbtasks.option_values import positive_int
from dbtasks.option_values import reject_unknown

MAX_KEY_LENGTH = 255
_KEYS = ("limit", "key", "fair")


class KeyedLimit:
    """What concurrency and rate limits share: the key one call counts against."""

    __slots__ = ()
    # An argument name, or a dotted path to a function of (args, kwargs); None: one key.
    key: str | None
    # "task:<path>" for a task's limit; None means "the task's queue".
    scope: str | None
    what: ClassVar[str]  # the limit's name in errors

    @property
    def key_function(self) -> bool:
        return is_key_function(self.key)

    def key_for(
        self,
        func: Callable[..., Any],
        queue_name: str,
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
    ) -> str:
        """The key of one call: scope, then the computed part if any."""
        return limit_key(self.scope, self.key, func, queue_name, args, kwargs, what=self.what)


@dataclass(frozen=True, slots=True)
class Concurrency(KeyedLimit):
    """A limit of ``limit`` slots per key."""

    what: ClassVar[str] = "concurrency"

    limit: int
    key: str | None = None
    scope: str | None = None
    # Priority orders only the key's own tasks; the claim ranks every key alike.
    fair: bool = False


def is_key_function(key: str | None) -> bool:
    """Whether a limit's ``key`` is a dotted path to a function (else an argument name)."""
    return key is not None and "." in key


def limit_key(
    scope: str | None,
    key: str | None,
    func: Callable[..., Any],
    queue_name: str,
    args: Sequence[Any],
    kwargs: Mapping[str, Any],
    *,
    what: str,
) -> str:
    """The key one call counts against: ``scope`` (or the queue), then ``key``'s value.

    Shared by concurrency and rate limits (``dbtasks.rate_limits``); ``what``
    names the limit in errors.
    """
    prefix = scope or f"queue:{queue_name}"
    if key is None:
        return prefix[:MAX_KEY_LENGTH]
    if is_key_function(key):
        value = import_string(key)(list(args), dict(kwargs))
    else:
        try:
            bound = inspect.signature(func).bind(*args, **kwargs)
        except TypeError as error:
            message = f"Cannot compute the {what} key {key!r}: {error}"
            raise TypeError(message) from error
        bound.apply_defaults()
        if key not in bound.arguments:
            raise TypeError(
                f"The {what} key names argument {key!r}, which {func.__qualname__}() does not take."
            )
        value = bound.arguments[key]
    return f"{prefix}:{value}"[:MAX_KEY_LENGTH]


def key_name(options: Mapping[str, Any], *, key: str) -> str | None:
    """Validate the ``"key"`` of a limit's options: an argument name or a dotted path."""
    name = options.get("key")
    if name is not None and (
        not isinstance(name, str) or not all(part.isidentifier() for part in name.split("."))
    ):
        raise OptionError(
            f"{key}['key'] must be an argument name or a dotted path to a function "
            f"of (args, kwargs), got {name!r}."
        )
    return name


def parse_concurrency(value: object, *, key: str, scope: str | None) -> Concurrency | None:
    """Validate one ``"concurrency"`` option: {"limit": N, "key": ..., "fair": bool}."""
    if value is None:
        return None
    options = mapping(value, key=key)
    reject_unknown(options, _KEYS, key=key)
    if "limit" not in options:
        raise OptionError(f"{key}['limit'] is required: how many may run at once.")
    limit = positive_int(options["limit"], key=f"{key}['limit']")
    fair = options.get("fair", False)
    if not isinstance(fair, bool):
        raise OptionError(f"{key}['fair'] must be True or False, got {fair!r}.")
    return Concurrency(limit=limit, key=key_name(options, key=key), scope=scope, fair=fair)


def check_key_function(key: str | None, *, what: str = "concurrency") -> str | None:
    """The problem with a limit's key function's dotted path, if any (for the system check)."""
    if key is None or not is_key_function(key):
        return None
    try:
        function = import_string(key)
    except ImportError:
        return f"The {what} key function {key!r} cannot be imported."
    if not callable(function):
        return f"The {what} key function {key!r} is not callable."
    return None
