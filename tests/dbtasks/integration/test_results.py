"""The public bulk read (``dbtasks.results``): what it says of each result."""

from __future__ import annotations

from dbtasks.results import get_results
from tests import tasks
from tests.dbtasks.helpers import override_options


def test_max_attempts_is_the_tasks_own_when_it_has_an_override(db, settings):
    # The queue allows 3 attempts (tests/task_settings.py); this task 7, the other 3.
    override_options(settings, tasks={"tests.tasks.always_fails": {"max_attempts": 7}})
    overridden = tasks.always_fails.enqueue()
    plain = tasks.noop.enqueue()

    summaries = get_results([overridden.id, plain.id])

    assert summaries[overridden.id].max_attempts == 7
    assert summaries[plain.id].max_attempts == 3
