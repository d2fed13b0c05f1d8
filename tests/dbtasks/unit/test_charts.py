"""The throughput chart's geometry and its text summary."""

from __future__ import annotations

from datetime import UTC
from datetime import datetime
from datetime import timedelta

import pytest

from dbtasks.ops.charts import nice_ceiling
from dbtasks.ops.charts import throughput_chart
from dbtasks.ops.recent import MinuteCount

START = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)


def minutes(*counts: tuple[int, int]) -> list[MinuteCount]:
    return [
        MinuteCount(START + timedelta(minutes=index), successful, failed)
        for index, (successful, failed) in enumerate(counts)
    ]


@pytest.mark.parametrize(
    ("value", "ceiling"),
    [(0, 1), (1, 1), (2, 2), (3, 5), (5, 5), (6, 10), (10, 10), (11, 20), (42, 50), (501, 1000)],
)
def test_nice_ceiling(value, ceiling):
    assert nice_ceiling(value) == ceiling


def test_sixty_minutes_fill_the_width_in_equal_slots():
    chart = throughput_chart(minutes(*[(1, 0)] * 60), width=600, height=120, gap=2)

    assert len(chart.bars) == 60
    assert [bar.slot_x for bar in chart.bars[:3]] == [0, 10, 20]
    assert all(bar.slot_width == 10 for bar in chart.bars)
    assert all(bar.width == 8 for bar in chart.bars)
    # Each bar is centred in its slot, and the last slot ends at the right edge.
    assert chart.bars[0].x == 1
    assert chart.bars[-1].slot_x + chart.bars[-1].slot_width == 600


def test_bars_stack_failed_on_successful_from_the_bottom_edge():
    chart = throughput_chart(minutes((3, 1), (0, 0), (0, 5)), width=300, height=100)

    assert chart.y_max == 5
    full, empty, failed_only = chart.bars
    assert (full.successful_y, full.successful_height) == (40, 60)
    assert (full.failed_y, full.failed_height) == (20, 20)
    assert full.failed_y + full.failed_height == full.successful_y
    assert (empty.successful_height, empty.failed_height) == (0, 0)
    assert (failed_only.failed_y, failed_only.failed_height) == (0, 100)


def test_the_busiest_minute_never_overflows_the_top():
    chart = throughput_chart(minutes((7, 0), (2, 1)), height=120)

    assert chart.y_max == 10
    assert min(bar.failed_y for bar in chart.bars) >= 0
    assert chart.bars[0].successful_height == pytest.approx(84)
    assert chart.mid_label == "5"


def test_titles_and_summary_say_what_the_bars_show(settings):
    settings.TIME_ZONE = "UTC"
    chart = throughput_chart(minutes((1, 0), (4, 2), (0, 0)))

    assert chart.bars[1].title == "12:01: 4 successful, 2 failed"
    assert chart.summary == (
        "7 attempts finished in the last 3 minutes: 5 successful, 2 failed. "
        "Busiest minute: 6 at 12:01."
    )
    assert (chart.total, chart.successful, chart.failed) == (7, 5, 2)


def test_an_idle_hour_has_flat_bars_and_says_so():
    chart = throughput_chart(minutes(*[(0, 0)] * 60))

    assert chart.y_max == 1
    assert chart.peak is None
    assert all(bar.successful_height == bar.failed_height == 0 for bar in chart.bars)
    assert chart.summary == "No attempts finished in the last 60 minutes."
    assert chart.mid_label == "0.5"
