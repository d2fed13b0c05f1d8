"""With DEBUG off, errors are the project's own pages: never a traceback, never a database query.

gunicorn runs the app as in production on a database it cannot open (a
SQLite file in a directory that does not exist): every request that needs
the database fails the way it does while a real database is down, and must
get templates/500.html, which itself needs no database. An unknown URL gets
templates/404.html. tests/messagecenter/process/test_database_outage.py does the same
against a Postgres whose sessions are killed and whose server restarts.
"""

from __future__ import annotations

import httpx
import pytest
from django.conf import settings
from django.db import connection

from tests.live import child_env
from tests.live import start_web

pytestmark = pytest.mark.process


@pytest.fixture(scope="module")
def site_without_database(tmp_path_factory):
    if connection.vendor != "sqlite":
        pytest.skip("uses no database at all: run in the SQLite pass")
    tmp = tmp_path_factory.mktemp("no-database")
    env = child_env(f"sqlite:///{tmp / 'missing' / 'db.sqlite3'}")
    server, url = start_web(env, tmp / "web.log", workers=1)
    yield server, url
    server.stop()


def test_a_request_that_needs_the_database_gets_the_error_page(site_without_database):
    server, url = site_without_database
    # A session cookie makes the session middleware read the database.
    response = httpx.get(f"{url}/", cookies={settings.SESSION_COOKIE_NAME: "a" * 32})

    assert response.status_code == 500
    assert 'data-error-page="500"' in response.text
    assert "Something went wrong on our side" in response.text
    for leak in ("Traceback", "OperationalError", "sqlite", "unable to open"):
        assert leak not in response.text
    # The error is logged for the operators, with its traceback.
    assert "unable to open database file" in server.output()


def test_an_unknown_url_gets_the_not_found_page(site_without_database):
    _, url = site_without_database
    response = httpx.get(f"{url}/no/such/<page>/")

    assert response.status_code == 404
    assert 'data-error-page="404"' in response.text
    assert "/no/such/%3Cpage%3E/" in response.text  # quoted by Django, escaped by the template
