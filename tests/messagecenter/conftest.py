"""Fixtures of the Message Center tests: a user, and a client signed in as her."""

from __future__ import annotations

import pytest

# alice's password, for the tests that sign in through the form.
PASSWORD = "pw-alice-0123"
# The header htmx sends with every request it makes.
HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def alice(django_user_model):
    return django_user_model.objects.create_user("alice", password=PASSWORD)


@pytest.fixture
def bob(django_user_model):
    return django_user_model.objects.create_user("bob", password="pw-bob-0123")


@pytest.fixture
def signed_in(client, alice):
    """The test client, signed in as alice."""
    client.force_login(alice)
    return client
