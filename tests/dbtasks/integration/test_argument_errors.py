"""Arguments that are not JSON-serialisable: a TypeError, as Django documents."""

from __future__ import annotations

import asyncio

import pytest

from dbtasks.compat import InvalidTask
from dbtasks.exceptions import InvalidTaskArguments
from dbtasks.models import DBTaskResult
from tests import tasks


@pytest.mark.parametrize("caught", [TypeError, InvalidTask, InvalidTaskArguments])
def test_enqueue_raises_an_error_catchable_as_type_error_or_invalid_task(db, caught):
    with pytest.raises(caught, match="cannot be stored as JSON"):
        tasks.echo.enqueue(object())

    assert not DBTaskResult.objects.exists()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("caught", [TypeError, InvalidTask])
def test_aenqueue_raises_the_same(caught):
    with pytest.raises(caught, match="cannot be stored as JSON"):
        asyncio.run(tasks.echo.aenqueue({1, 2}))

    assert not DBTaskResult.objects.exists()
