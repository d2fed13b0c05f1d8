"""A notification's delivery report: how its send to each channel ended, in one line.

``report_delivery`` (``messagecenter/tasks.py``), the callback of each
send's workflow group, records every channel's outcome on its
``Destination`` and the notification's ``report``: "Delivered to 2 of 3
channels; Phone failed: The ntfy server refused the message ...", and
returns it; the page reads it back with ``line_of()``.
"""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any

from dbtasks.compat import TaskError
from dbtasks.results import ResultSummary
from dbtasks.results import State
from messagecenter.errors import plain_error
from messagecenter.models import Destination

DELIVERED = "delivered"
FAILED = "failed"
CANCELLED = "cancelled"


def record_outcome(destination: Destination, outcome: Mapping[str, Any]) -> None:
    """Set the destination's outcome from its send's, as the workflow callback received it."""
    path = outcome.get("exception_class_path") or ""
    if outcome.get("status") == "SUCCESSFUL":
        destination.outcome, destination.error = DELIVERED, ""
    elif path.endswith(".TaskCancelled"):
        destination.outcome, destination.error = CANCELLED, ""
    else:
        error = TaskError(exception_class_path=path, traceback=outcome.get("error") or "")
        destination.outcome, destination.error = FAILED, plain_error(error)


def report_text(destinations: Sequence[Destination]) -> str:
    """One line: how many channels have the message, and why the others do not."""
    delivered = [d for d in destinations if d.outcome == DELIVERED]
    if len(destinations) == 1:
        head = f"Delivered to {destinations[0].channel_name}"
    elif len(delivered) == len(destinations):
        head = f"Delivered to all {len(destinations)} channels"
    else:
        head = f"Delivered to {len(delivered)} of {len(destinations)} channels"
    others = [why_not(d) for d in destinations if d.outcome != DELIVERED]
    if len(destinations) == 1 and others:
        return f"{others[0]}."
    return "; ".join([head, *others]) + "."


def why_not(destination: Destination) -> str:
    name = destination.channel_name
    if destination.outcome == CANCELLED:
        return f"{name} cancelled"
    if destination.outcome == FAILED:
        return f"{name} failed: {destination.error.rstrip('.')}"
    return f"{name}: no outcome recorded"


def line_of(report: ResultSummary | None, *, recorded: str) -> str:
    """The report's line: its own return value once it has succeeded, else ``recorded``.

    The return value is read with the report's state, in one query, so a row
    shown finished always has its line. The notification's column
    (``recorded``) was read earlier: the report may have written it and
    finished in between, and a page that then saw it finished without a line
    would never ask again. The column still serves once the result is purged.
    """
    if report is None or report.state != State.SUCCESSFUL:
        return recorded
    value = report.return_value
    text = value.get("report") if isinstance(value, dict) else None
    return text if isinstance(text, str) else recorded
