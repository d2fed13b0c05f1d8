"""The Prometheus text format: escaping, number formatting, rendering."""

from __future__ import annotations

import math

import pytest

from dbtasks.ops.prometheus import MetricFamily
from dbtasks.ops.prometheus import escape_help
from dbtasks.ops.prometheus import escape_label_value
from dbtasks.ops.prometheus import format_bound
from dbtasks.ops.prometheus import format_value
from dbtasks.ops.prometheus import render


@pytest.mark.parametrize(
    ("raw", "escaped"),
    [
        ("default", "default"),
        ('say "hi"', r"say \"hi\""),
        ("back\\slash", r"back\\slash"),
        ("two\nlines", r"two\nlines"),
        # Backslashes first, or the escapes' own backslashes would be doubled.
        ('\\"\n', r"\\\"\n"),
        ("é ✓", "é ✓"),
    ],
)
def test_label_values_escape_backslash_quote_and_newline(raw, escaped):
    assert escape_label_value(raw) == escaped


def test_help_escapes_backslash_and_newline_but_not_quotes():
    assert escape_help('a "b" \\ c\nd') == r'a "b" \\ c\nd'


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0, "0"),
        (3, "3"),
        (3.0, "3"),
        (0.25, "0.25"),
        (1e-05, "1e-05"),
        (math.inf, "+Inf"),
        (-math.inf, "-Inf"),
        (math.nan, "NaN"),
        (2**60, str(float(2**60))),
    ],
)
def test_values(value, text):
    assert format_value(value) == text


@pytest.mark.parametrize(
    ("bound", "text"), [(0.01, "0.01"), (1, "1.0"), (2.5, "2.5"), (60, "60.0"), (math.inf, "+Inf")]
)
def test_bucket_bounds_are_written_like_the_official_client(bound, text):
    assert format_bound(bound) == text


def test_render_writes_help_type_and_samples_with_labels_in_order():
    gauge = MetricFamily("dbtasks_tasks", "gauge", "Tasks.\nBy state.")
    gauge.add(2, backend="default", queue='we"ird', status="ready")
    gauge.add(0.5, backend="default", queue="b", status="running")
    plain = MetricFamily("dbtasks_workers", "gauge", "Workers.")
    plain.add(1)

    assert render([gauge, plain]) == (
        "# HELP dbtasks_tasks Tasks.\\nBy state.\n"
        "# TYPE dbtasks_tasks gauge\n"
        'dbtasks_tasks{backend="default",queue="we\\"ird",status="ready"} 2\n'
        'dbtasks_tasks{backend="default",queue="b",status="running"} 0.5\n'
        "# HELP dbtasks_workers Workers.\n"
        "# TYPE dbtasks_workers gauge\n"
        "dbtasks_workers 1\n"
    )


def test_histogram_samples_carry_their_suffixes():
    histogram = MetricFamily("dbtasks_attempt_duration_seconds", "histogram", "Durations.")
    histogram.add(1, "_bucket", queue="q", le="0.5")
    histogram.add(3, "_bucket", queue="q", le="+Inf")
    histogram.add(4.25, "_sum", queue="q")
    histogram.add(3, "_count", queue="q")

    lines = render([histogram]).splitlines()

    assert lines[2:] == [
        'dbtasks_attempt_duration_seconds_bucket{queue="q",le="0.5"} 1',
        'dbtasks_attempt_duration_seconds_bucket{queue="q",le="+Inf"} 3',
        'dbtasks_attempt_duration_seconds_sum{queue="q"} 4.25',
        'dbtasks_attempt_duration_seconds_count{queue="q"} 3',
    ]


def test_empty_family_still_has_help_and_type():
    assert render([MetricFamily("dbtasks_x", "gauge", "X.")]) == (
        "# HELP dbtasks_x X.\n# TYPE dbtasks_x gauge\n"
    )


@pytest.mark.parametrize("name", ["", "1abc", "has-dash", "with space"])
def test_invalid_metric_names_are_refused(name):
    with pytest.raises(ValueError, match="Invalid metric name"):
        MetricFamily(name, "gauge", "X.")


@pytest.mark.parametrize("label", ["__reserved", "9lives"])
def test_invalid_label_names_are_refused(label):
    family = MetricFamily("dbtasks_x", "gauge", "X.")
    with pytest.raises(ValueError, match="Invalid label name"):
        family.add(1, **{label: "v"})
