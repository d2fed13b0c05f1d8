"""Fixtures shared by every test layer."""

from __future__ import annotations

from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connection

# The worker-process factory, for every test that starts real workers.
from tests.workers import start_worker  # noqa: F401

DBTASKS_TESTS = Path(__file__).resolve().parent / "dbtasks"
POSTGRES_TESTS = DBTASKS_TESTS / "postgres"


def run_worker(*args: str) -> tuple[str, str]:
    """Run ``dbtasks_worker --oneshot`` in this process; return (stdout, stderr).

    Arguments are CLI strings, so argparse validation runs as in production.
    """
    if connection.in_atomic_block:
        # The worker runs tasks in other threads, with their own connections:
        # they would wait forever on the test's open transaction.
        raise RuntimeError("Tests that run a worker need the transactional_db fixture.")
    out, err = StringIO(), StringIO()
    call_command("dbtasks_worker", "--oneshot", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


@pytest.fixture
def worker():
    """The ``run_worker`` helper, for tests that prefer a fixture."""
    return run_worker


def is_postgres() -> bool:
    return connection.vendor == "postgresql"


def pytest_ignore_collect(collection_path, config):
    """On Django 5.2 (make test-django52), collect only tests/dbtasks.

    The Message Center tests import Django 6-only features and never run there.
    """
    import django

    if django.VERSION >= (6,) or collection_path.suffix != ".py":
        return None
    if not collection_path.name.startswith("test_"):
        return None
    return DBTASKS_TESTS not in collection_path.parents


def pytest_collection_modifyitems(config, items):
    """Tests marked ``postgres`` (all of tests/dbtasks/postgres/) skip on other databases."""
    skip = pytest.mark.skip(
        reason="needs Postgres: run with DATABASE_URL=postgres://... "
        "(make test does so when TEST_POSTGRES_URL answers)"
    )
    for item in items:
        if POSTGRES_TESTS in item.path.parents:
            item.add_marker(pytest.mark.postgres)
        if item.get_closest_marker("postgres") and connection.vendor != "postgresql":
            item.add_marker(skip)


@pytest.fixture
def ntfy(settings):
    """A stand-in ntfy server on loopback: NTFY_URL points at its topic, and it
    is the default server of every user's channels (it takes any topic).

    It records every request (``ntfy.requests``) and can be told to fail or
    hang (see tests/ntfy_server.py).
    """
    from tests.ntfy_server import NtfyStandIn

    with NtfyStandIn() as server:
        settings.NTFY_URL = server.topic_url
        settings.NTFY_DEFAULT_SERVER = server.url
        yield server
