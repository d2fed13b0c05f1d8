"""Fixtures of the Message Center tests: a user, and a client signed in as her."""

from __future__ import annotations

import pytest

from messagecenter import live_tokens

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


def live_token(user) -> dict[str, str]:
    """The header the page's script sends with every poll: ``user``'s live token."""
    return {"HTTP_X_LIVE_TOKEN": live_tokens.issue(user)}


@pytest.fixture
def signed_in(client, alice):
    """The test client, signed in as alice (and polling with her live token, as her page does)."""
    client.force_login(alice)
    client.defaults.update(live_token(alice))
    return client
