"""What "recently" means on the read side, and how attempt durations are bucketed."""

from __future__ import annotations

from datetime import timedelta

# "Recently" for failures, outcomes and durations: the dashboard's and the
# metrics' sliding window.
WINDOW = timedelta(hours=1)

# Upper bounds (seconds) of the attempt-duration histogram; +Inf is implied.
DURATION_BUCKETS: tuple[float, ...] = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
