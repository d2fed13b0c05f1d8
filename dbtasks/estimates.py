"""Row counts a page can afford on a table of millions: the admin's paginator.

``COUNT(*)`` reads every matching row: on a million-row task table that is
most of a second, on every page of the admin's task list. Paging needs only
about how many pages there are, so above ``EXACT_BELOW`` rows this trusts the
planner's estimate (``EXPLAIN``, from the statistics Postgres keeps up to
date with autovacuum), and counts exactly below it, where counting is cheap.
Other databases have no such estimate and always count. The estimate lags
behind a mass delete (a purge of millions) until autovacuum analyzes the
table again: for a while the list may say "about 20,000" of far fewer.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING
from typing import Any

from django.core.paginator import Paginator
from django.db import connections
from django.db.models import QuerySet
from django.utils.functional import cached_property

# Estimates below this are replaced by an exact count.
EXACT_BELOW = 10_000

if TYPE_CHECKING:  # generic for type checkers only
    AnyPaginator = Paginator[Any]
else:
    AnyPaginator = Paginator


def estimated_count(queryset: QuerySet[Any]) -> int | None:
    """The planner's estimate of how many rows ``queryset`` returns; None if it has none."""
    connection = connections[queryset.db]
    if connection.vendor != "postgresql":
        return None
    sql, params = queryset.order_by().query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
        plan = cursor.fetchone()[0]
    if isinstance(plan, str):  # drivers that do not decode json
        plan = json.loads(plan)
    return int(plan[0]["Plan"]["Plan Rows"])


class EstimatedCountPaginator(AnyPaginator):
    """A paginator whose ``count`` is the planner's estimate above ``EXACT_BELOW`` rows."""

    estimated = False  # whether ``count`` is an estimate (the template says "about")

    @cached_property
    def count(self) -> int:
        queryset = self.object_list
        if isinstance(queryset, QuerySet):
            estimate = estimated_count(queryset)
            if estimate is not None and estimate >= EXACT_BELOW:
                self.estimated = True
                return estimate
        return super().count
