"""Every attempt is recorded, whatever its outcome holds.

An error whose text the database cannot hold is cleaned and cut to size; a
return value over ``max_return_size`` fails the task at once with a clear
error; an outcome the database refuses for good is replaced by an
``OutcomeNotStored`` error instead of being retried for ever.
"""

from __future__ import annotations

import pytest
from django.db import DataError
from django.db import OperationalError

from dbtasks.exceptions import InvalidTaskArguments
from dbtasks.models import FAILED
from dbtasks.models import SUCCESSFUL
from dbtasks.sql import close
from dbtasks.worker import outcomes
from dbtasks.worker.storable import MAX_TRACEBACK_LENGTH
from dbtasks.worker.storable import is_permanent
from dbtasks.worker.storable import storable_text
from tests import tasks
from tests.dbtasks.helpers import default_backend
from tests.dbtasks.helpers import override_options
from tests.dbtasks.helpers import row_of

pytestmark = pytest.mark.django_db(transaction=True)


def test_storable_text_escapes_nul_and_surrogates_and_keeps_both_ends() -> None:
    assert storable_text("a\x00b\ud800c", 100) == "a\\x00b\\ud800c"
    text = "start " + "x" * 10_000 + " end"
    cut = storable_text(text, 1000)
    assert cut.startswith("start ")
    assert cut.endswith(" end")
    assert "characters cut" in cut
    assert len(cut) < 1100
    assert storable_text("short", 1000) == "short"


def test_permanent_and_transient_database_errors_are_told_apart() -> None:
    assert is_permanent(DataError("value too long"))
    assert is_permanent(ValueError("NUL in a text parameter"))
    assert not is_permanent(OperationalError("server closed the connection"))


def test_an_error_with_nul_and_surrogates_is_recorded(worker) -> None:
    result = tasks.fails_with_unstorable_text.using(queue_name="other").enqueue()
    worker("--queue", "other")
    row = row_of(result)
    assert row.status == FAILED  # three attempts, all recorded
    tracebacks = [attempt.traceback for attempt in row.attempts.all()]
    assert len(tracebacks) == 3
    assert all("a NUL \\x00 and a lone surrogate \\ud800" in text for text in tracebacks)


def test_a_huge_error_is_cut_to_size(worker) -> None:
    result = tasks.fails_with_unstorable_text.enqueue(5_000_000)
    worker()
    attempt = row_of(result).attempts.first()
    assert attempt is not None
    assert len(attempt.traceback) < MAX_TRACEBACK_LENGTH + 100
    assert attempt.traceback.startswith("Traceback")
    assert "characters cut" in attempt.traceback
    assert attempt.exception_class_path == "builtins.ValueError"


def test_a_return_value_over_the_limit_fails_without_retry(settings, worker) -> None:
    override_options(settings, max_return_size=1000)
    small = tasks.returns_text_of.enqueue(100)
    large = tasks.returns_text_of.enqueue(5000)
    worker()
    assert row_of(small).status == SUCCESSFUL
    row = row_of(large)
    assert (row.status, row.attempt_count, row.return_value) == (FAILED, 1, None)
    [attempt] = row.attempts.all()
    assert attempt.exception_class_path == "dbtasks.exceptions.OutcomeNotStored"
    assert "5,002 bytes as JSON is over the limit of 1,000 bytes" in attempt.traceback


def test_arguments_over_the_limit_are_refused_at_enqueue(settings) -> None:
    override_options(settings, max_arguments_size=1000)
    tasks.echo.enqueue("x" * 900)
    with pytest.raises(InvalidTaskArguments, match="over the limit of 1,000 bytes"):
        tasks.echo.enqueue("x" * 1000)


def test_an_outcome_the_database_refuses_for_good_is_replaced(monkeypatch, worker) -> None:
    """The first write fails as a value the column cannot hold; the substitute is recorded."""
    real_close = close.close_attempt  # what outcomes imported
    refused = []

    def refuse_return_values(row, *, changes, **kwargs):
        if changes.get("return_value") is not None:
            refused.append(row.pk)
            raise DataError("value too long for type character varying(10)")
        return real_close(row, changes=changes, **kwargs)

    monkeypatch.setattr(outcomes, "close_attempt", refuse_return_values)
    result = tasks.returns_text_of.enqueue(10)
    worker()
    row = row_of(result)
    assert refused == [row.pk]  # tried once, never again
    assert (row.status, row.attempt_count, row.return_value) == (FAILED, 1, None)
    [attempt] = row.attempts.all()
    assert attempt.exception_class_path == "dbtasks.exceptions.OutcomeNotStored"
    assert "The outcome could not be stored: DataError: value too long" in attempt.traceback


def test_a_transient_error_is_retried_until_the_outcome_is_stored(monkeypatch, worker) -> None:
    real_close = close.close_attempt  # what outcomes imported
    failures: list[int] = []

    def fail_twice(row, **kwargs):
        if len(failures) < 2:
            failures.append(row.pk)
            raise OperationalError("server closed the connection unexpectedly")
        return real_close(row, **kwargs)

    monkeypatch.setattr(outcomes, "close_attempt", fail_twice)
    result = tasks.returns_text_of.enqueue(10)
    worker()
    row = row_of(result)
    assert len(failures) == 2
    assert (row.status, row.return_value) == (SUCCESSFUL, "x" * 10)


def test_the_backend_reads_the_limits_from_options(settings) -> None:
    override_options(settings, max_arguments_size=None, max_return_size=123)
    config = default_backend().config
    assert (config.max_arguments_size, config.max_return_size) == (None, 123)
