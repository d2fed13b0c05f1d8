"""Small text helpers the dashboard, the metrics and the health check print."""

from __future__ import annotations

from datetime import timedelta


def format_duration(value: timedelta | None) -> str:
    """Say how long ``value`` is, in at most two units.

    ``<1s``, ``42s``, ``5m 3s``, ``5m``, ``2h 10m``, ``3d 4h``; ``-`` for None.
    """
    if value is None:
        return "-"
    seconds = int(value.total_seconds())
    units = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))
    for index, (suffix, size) in enumerate(units):
        if seconds >= size:
            major, rest = divmod(seconds, size)
            text = f"{major}{suffix}"
            # The next unit down, if any and not zero: "5m 3s", but "5m", not "5m 0s".
            if index + 1 < len(units):
                minor_suffix, minor_size = units[index + 1]
                if minor := rest // minor_size:
                    text += f" {minor}{minor_suffix}"
            return text
    return "<1s"


def last_traceback_line(traceback: str, *, limit: int = 500) -> str:
    """The last non-blank line of a traceback (where Python names the error), shortened."""
    for line in reversed(traceback.splitlines()):
        if line.strip():
            line = line.strip()
            return line if len(line) <= limit else line[: limit - 1] + "…"
    return ""
