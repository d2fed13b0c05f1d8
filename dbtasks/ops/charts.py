"""The geometry of the dashboard's throughput chart, as data for the template.

The chart is plain server-rendered SVG: one stacked bar per minute
(successful below, failed above), no JavaScript. Everything numeric is
computed here, so the template only prints attributes and tests can check
the geometry without parsing SVG.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from django.utils import timezone

from dbtasks.ops.recent import MinuteCount


@dataclass(frozen=True, slots=True, kw_only=True)
class Bar:
    """One minute's column: a full-height slot (for the tooltip) and two stacked rects."""

    minute: datetime
    successful: int
    failed: int
    x: float  # the visible bar, centred in its slot
    width: float
    slot_x: float  # the whole minute's column, which carries the tooltip
    slot_width: float
    successful_y: float
    successful_height: float
    failed_y: float
    failed_height: float
    title: str  # the <title>: what a pointer or a screen reader gets for this minute


@dataclass(frozen=True, slots=True, kw_only=True)
class Chart:
    width: int
    height: int
    y_max: int  # the value at the top edge
    bars: tuple[Bar, ...]
    total: int
    successful: int
    failed: int
    peak: MinuteCount | None  # the busiest minute, None when nothing ran
    summary: str  # the chart in one sentence, for everyone who cannot see it

    @property
    def mid_y(self) -> float:
        return self.height / 2

    @property
    def mid_label(self) -> str:
        """The value at the halfway gridline: "5", or "2.5" when y_max is odd."""
        half = self.y_max / 2
        return str(int(half)) if half.is_integer() else str(half)


def nice_ceiling(value: int) -> int:
    """The smallest of 1, 2, 5, 10, 20, 50, ... that is at least ``value`` (1 for 0)."""
    if value <= 1:
        return 1
    magnitude: int = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if step * magnitude >= value:
            return step * magnitude
    return 10 * magnitude  # pragma: no cover - the loop always returns


def _minute_label(minute: datetime) -> str:
    return timezone.localtime(minute).strftime("%H:%M")


def throughput_chart(
    minutes: Sequence[MinuteCount], *, width: int = 600, height: int = 120, gap: float = 2
) -> Chart:
    """Lay out one bar per minute across ``width`` x ``height`` (SVG user units).

    Bars grow up from the bottom edge (y = height). Heights are scaled so the
    busiest minute reaches ``height * busiest / y_max``, with ``y_max`` a
    round number, so the gridline halfway up is a round number too.
    """
    busiest = max((minute.total for minute in minutes), default=0)
    y_max = nice_ceiling(busiest)
    scale = height / y_max
    slot = width / len(minutes) if minutes else width
    bar_width = max(slot - gap, 1.0)
    bars = []
    for index, minute in enumerate(minutes):
        successful_height = round(minute.successful * scale, 2)
        failed_height = round(minute.failed * scale, 2)
        successful_y = round(height - successful_height, 2)
        bars.append(
            Bar(
                minute=minute.minute,
                successful=minute.successful,
                failed=minute.failed,
                x=round(index * slot + (slot - bar_width) / 2, 2),
                width=round(bar_width, 2),
                slot_x=round(index * slot, 2),
                slot_width=round(slot, 2),
                successful_y=successful_y,
                successful_height=successful_height,
                failed_y=round(successful_y - failed_height, 2),
                failed_height=failed_height,
                title=(
                    f"{_minute_label(minute.minute)}: {minute.successful} successful, "
                    f"{minute.failed} failed"
                    if minute.counted
                    else f"{_minute_label(minute.minute)}: not counted yet"
                ),
            )
        )
    successful = sum(minute.successful for minute in minutes)
    failed = sum(minute.failed for minute in minutes)
    total = successful + failed
    peak = max(minutes, key=lambda minute: minute.total) if busiest else None
    if peak is None:
        summary = f"No attempts finished in the last {len(minutes)} minutes."
    else:
        summary = (
            f"{total} attempts finished in the last {len(minutes)} minutes: "
            f"{successful} successful, {failed} failed. Busiest minute: {peak.total} "
            f"at {_minute_label(peak.minute)}."
        )
    return Chart(
        width=width,
        height=height,
        y_max=y_max,
        bars=tuple(bars),
        total=total,
        successful=successful,
        failed=failed,
        peak=peak,
        summary=summary,
    )
