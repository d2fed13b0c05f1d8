"""The task admin's links to your app (``dbtasks.admin.register_link``)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from dbtasks.admin import register_link
from dbtasks.admin import unregister_link
from tests import tasks


def echo_link(row):
    if row.task_path != tasks.echo.module_path:
        return None
    return f"Echo <{row.pk}>", f"/echoes/{row.pk}/?a=1&b=2"


@pytest.fixture
def registered():
    register_link(echo_link)
    register_link(echo_link)  # twice: still one link
    yield
    unregister_link(echo_link)


def change_page(admin_client, result):
    response = admin_client.get(reverse("admin:dbtasks_dbtaskresult_change", args=[result.id]))
    assert response.status_code == 200
    return response.content.decode()


@pytest.mark.usefixtures("registered")
def test_a_registered_function_links_the_tasks_it_knows(admin_client, db):
    echo = tasks.echo.enqueue("hi")
    other = tasks.noop.enqueue()

    page = change_page(admin_client, echo)
    # Escaped, once.
    link = f'<a href="/echoes/{echo.id}/?a=1&amp;b=2">Echo &lt;{echo.id}&gt;</a>'
    assert page.count(link) == 1
    assert "/echoes/" not in change_page(admin_client, other)


def test_without_a_function_there_is_no_link(admin_client, db):
    echo = tasks.echo.enqueue("hi")
    assert "/echoes/" not in change_page(admin_client, echo)
