"""Throttling of sign-in, sign-up and password reset: refused before hashing, never for long.

Time moves by patching ``timezone.now`` as the throttle reads it, so a
window's end is reached without waiting; otherwise it stands still just after
the start of every limit's window, so that a slow machine cannot carry a
test's hits across a window's end.
"""

from __future__ import annotations

from datetime import UTC
from datetime import datetime
from datetime import timedelta
from unittest import mock

import pytest
import time_machine
from django.contrib.auth import authenticate
from django.test import Client
from django.utils import timezone

from messagecenter import throttle
from tests.messagecenter.conftest import PASSWORD

pytestmark = pytest.mark.django_db

ATTACKER = "203.0.113.7"
ALICE_HOME = "198.51.100.20"


def sign_in(client: Client, password: str, *, address: str, username: str = "alice"):
    data = {"username": username, "password": password}
    return client.post("/accounts/login/", data, REMOTE_ADDR=address)


@pytest.fixture(autouse=True)
def start_of_a_window():
    # On the hour: the start of a window of every limit (minutes or hours long).
    with time_machine.travel(datetime(2026, 1, 5, 9, 0, 1, tzinfo=UTC), tick=False):
        yield


@pytest.fixture
def hashing():
    """Counts the password checks (authenticate() is where hashing happens)."""
    target = "django.contrib.auth.forms.authenticate"
    with mock.patch(target, wraps=authenticate) as spy:
        yield spy


def test_wrong_passwords_are_refused_before_hashing_after_the_limit(alice, hashing):
    limit = throttle.SIGN_IN_FAILURES_PER_ACCOUNT_AND_ADDRESS.max_hits
    client = Client()
    for _ in range(limit):
        assert sign_in(client, "wrong", address=ATTACKER).status_code == 200
    assert hashing.call_count == limit

    refused = sign_in(client, PASSWORD, address=ATTACKER)  # even the right one
    assert refused.status_code == 429
    assert "Too many sign-in attempts. Try again in" in refused.content.decode()
    assert hashing.call_count == limit  # nothing hashed


def test_the_real_user_at_another_address_still_signs_in(alice):
    attacker = Client()
    for _ in range(throttle.SIGN_IN_FAILURES_PER_ACCOUNT_AND_ADDRESS.max_hits + 3):
        sign_in(attacker, "wrong", address=ATTACKER)
    response = sign_in(Client(), PASSWORD, address=ALICE_HOME)
    assert response.status_code == 302


def test_a_block_ends_with_its_window(alice):
    client = Client()
    for _ in range(throttle.SIGN_IN_FAILURES_PER_ACCOUNT_AND_ADDRESS.max_hits):
        sign_in(client, "wrong", address=ATTACKER)
    assert sign_in(client, PASSWORD, address=ATTACKER).status_code == 429
    later = timezone.now() + throttle.SIGN_IN_FAILURES_PER_ACCOUNT_AND_ADDRESS.window
    with mock.patch("django.utils.timezone.now", return_value=later + timedelta(seconds=1)):
        assert sign_in(client, PASSWORD, address=ATTACKER).status_code == 302


def test_one_address_trying_many_accounts_is_throttled(django_user_model, hashing):
    limit = throttle.SIGN_IN_PER_ADDRESS.max_hits
    client = Client()
    for number in range(limit):
        sign_in(client, "wrong", address=ATTACKER, username=f"user{number}")
    assert sign_in(client, "wrong", address=ATTACKER, username="another").status_code == 429
    assert hashing.call_count == limit


def test_sign_up_is_throttled_per_address():
    client = Client()
    for number in range(throttle.SIGN_UP_PER_ADDRESS.max_hits):
        client.post("/accounts/sign-up/", {"username": f"u{number}"}, REMOTE_ADDR=ATTACKER)
    refused = client.post("/accounts/sign-up/", {"username": "more"}, REMOTE_ADDR=ATTACKER)
    assert refused.status_code == 429
    assert "Too many sign-ups from your address" in refused.content.decode()
    other = client.post("/accounts/sign-up/", {"username": "x"}, REMOTE_ADDR=ALICE_HOME)
    assert other.status_code == 422  # served (the form is just incomplete)


def test_password_reset_is_throttled_per_email(alice):
    client = Client()
    data = {"email": "alice@example.com"}
    for number in range(throttle.RESET_PER_EMAIL.max_hits):
        address = f"192.0.2.{number + 1}"
        assert (
            client.post("/accounts/password_reset/", data, REMOTE_ADDR=address).status_code == 302
        )
    refused = client.post("/accounts/password_reset/", data, REMOTE_ADDR="192.0.2.99")
    assert refused.status_code == 429
    assert "Too many password reset requests" in refused.content.decode()


def test_x_forwarded_for_counts_only_behind_a_declared_proxy(settings):
    request = mock.Mock(
        META={"REMOTE_ADDR": "10.0.0.2", "HTTP_X_FORWARDED_FOR": "1.2.3.4, 5.6.7.8"}
    )
    settings.TRUST_X_FORWARDED_FOR = False
    assert throttle.client_address(request) == "10.0.0.2"
    settings.TRUST_X_FORWARDED_FOR = True
    assert (
        throttle.client_address(request) == "5.6.7.8"
    )  # what our proxy saw, not the client's claim
