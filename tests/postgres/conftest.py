"""Postgres-only tests: `make test` runs them with DATABASE_URL=$TEST_POSTGRES_URL."""

from __future__ import annotations

import pytest
from django.db import connection


def pytest_collection_modifyitems(config, items):
    skip = pytest.mark.skip(
        reason="needs Postgres: run with DATABASE_URL=postgres://... "
        "(make test does so when TEST_POSTGRES_URL answers)"
    )
    for item in items:
        if "tests/postgres/" in str(item.fspath):
            item.add_marker(pytest.mark.postgres)
            if connection.vendor != "postgresql":
                item.add_marker(skip)


# The worker-process factory of tests/process, for the Postgres-only process tests.
from tests.process.conftest import start_worker  # noqa: E402, F401
