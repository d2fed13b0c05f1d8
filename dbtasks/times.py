"""One way to show a time on the staff pages (ops dashboard, admin): labelled with its zone.

``2026-11-30 14:05:09 UTC``: the active time zone (the project's TIME_ZONE,
or the user's if the project activates one), always named, so a staff
member never has to guess which zone a time is in.
"""

from __future__ import annotations

from datetime import datetime

from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString

FORMAT = "%Y-%m-%d %H:%M:%S %Z"


def format_time(value: datetime | None) -> str:
    """``value`` in the active zone, e.g. ``2026-11-30 14:05:09 UTC``; ``-`` for None."""
    if value is None:
        return "-"
    return timezone.localtime(value).strftime(FORMAT)


def time_element(value: datetime | None) -> SafeString:
    """``format_time(value)`` in a ``<time>`` element carrying the exact instant."""
    if value is None:
        return format_html("{}", "-")
    return format_html(
        '<time datetime="{}">{}</time>', value.isoformat(timespec="seconds"), format_time(value)
    )


def zone_name() -> str:
    """The active zone's abbreviation now, e.g. ``UTC``: for "Times in UTC" labels."""
    return timezone.localtime(timezone.now()).strftime("%Z")
