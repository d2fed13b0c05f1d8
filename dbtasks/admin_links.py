"""Links from a task's admin page to what it works for in your app.

dbtasks imports nothing from your app, so it cannot know that task 42
delivers notification 7. Your app tells it: register a function that takes
a task's row and returns ``(label, url)``, or None when the task is not
one of its own. The task's admin page shows every link the registered
functions return (its "links" field); the list does not, so a function
may make a query.

    from dbtasks.admin import register_link

    @register_link
    def notification_of(row):
        if row.task_path != send_notification.module_path:
            return None
        ...
        return f"Notification {pk}", reverse("admin:app_notification_change", args=[pk])

Register from your app's ``admin.py`` (the admin imports it at start-up).
"""

from __future__ import annotations

from collections.abc import Callable

from dbtasks.models import DBTaskResult

Link = tuple[str, str]  # (label, URL)
LinkFunction = Callable[[DBTaskResult], Link | None]

_functions: list[LinkFunction] = []


def register_link(function: LinkFunction) -> LinkFunction:
    """Show the link ``function(row)`` returns on each task's admin page; usable as a decorator."""
    if function not in _functions:  # a module imported twice registers once
        _functions.append(function)
    return function


def unregister_link(function: LinkFunction) -> None:
    """Stop showing ``function``'s links (for tests, mostly)."""
    if function in _functions:
        _functions.remove(function)


def links_for(row: DBTaskResult) -> list[Link]:
    """Every registered function's link for ``row``, in the order they were registered."""
    return [link for function in list(_functions) if (link := function(row)) is not None]
