"""The admin's task list never reads the argument and return value columns."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from tests import tasks

pytestmark = pytest.mark.django_db


def selects_of_results(queries: list[dict[str, str]]) -> list[str]:
    return [
        query["sql"]
        for query in queries
        if query["sql"].startswith("SELECT") and 'FROM "dbtasks_dbtaskresult"' in query["sql"]
    ]


def test_the_list_defers_payloads_and_the_change_page_shows_them(admin_client) -> None:
    result = tasks.echo.enqueue("a large argument")
    with CaptureQueriesContext(connection) as listed:
        response = admin_client.get(reverse("admin:dbtasks_dbtaskresult_changelist"))
    assert response.status_code == 200
    assert f">{result.id}<" in response.content.decode()
    selects = selects_of_results(listed.captured_queries)
    assert selects
    assert not any('"arguments"' in sql or '"return_value"' in sql for sql in selects)

    response = admin_client.get(reverse("admin:dbtasks_dbtaskresult_change", args=[result.id]))
    assert "a large argument" in response.content.decode()
