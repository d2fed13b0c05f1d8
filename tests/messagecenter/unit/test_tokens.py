"""Channel tokens encrypted at rest: the round trip, a wrong key, rotation, the key checks."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from django.core import checks

from messagecenter import tokens
from messagecenter.checks import check_channel_token_keys

TOKEN = "tk_AgQdq7mVBoFD37zQVN29RhuMzNIz"


@pytest.fixture
def key_a():
    return Fernet.generate_key().decode()


@pytest.fixture
def key_b():
    return Fernet.generate_key().decode()


def test_a_token_round_trips_and_its_ciphertext_is_not_the_token(settings, key_a):
    settings.CHANNEL_TOKEN_KEYS = [key_a]
    stored = tokens.encrypt(TOKEN)
    assert TOKEN not in stored
    assert tokens.decrypt(stored, channel="Phone") == TOKEN
    assert tokens.encrypt(TOKEN) != stored  # Fernet is randomised: no equal-token leak


def test_no_token_stays_empty(settings):
    assert tokens.encrypt("") == ""
    assert tokens.decrypt("", channel="Phone") == ""


def test_a_wrong_key_is_a_clear_error_not_an_empty_token(settings, key_a, key_b):
    settings.CHANNEL_TOKEN_KEYS = [key_a]
    stored = tokens.encrypt(TOKEN)
    settings.CHANNEL_TOKEN_KEYS = [key_b]
    with pytest.raises(tokens.TokenUnreadable) as raised:
        tokens.decrypt(stored, channel="Phone")
    message = str(raised.value)
    assert message.startswith("The access token of channel 'Phone' cannot be decrypted")
    assert "CHANNEL_TOKEN_KEY" in message
    for secret in (TOKEN, key_a, key_b):
        assert secret not in message


def test_a_new_key_first_keeps_old_tokens_readable_and_rotate_moves_them(settings, key_a, key_b):
    settings.CHANNEL_TOKEN_KEYS = [key_a]
    old = tokens.encrypt(TOKEN)
    settings.CHANNEL_TOKEN_KEYS = [key_b, key_a]
    assert tokens.decrypt(old, channel="Phone") == TOKEN
    rotated = tokens.rotate(old)
    settings.CHANNEL_TOKEN_KEYS = [key_b]
    assert tokens.decrypt(rotated, channel="Phone") == TOKEN
    with pytest.raises(tokens.TokenUnreadable):
        tokens.decrypt(old, channel="Phone")


def test_without_keys_a_key_derived_from_secret_key_and_its_fallbacks(settings):
    settings.CHANNEL_TOKEN_KEYS = []
    settings.SECRET_KEY = "first-secret-key-0123456789"
    stored = tokens.encrypt(TOKEN)
    # Django's SECRET_KEY rotation: the old key as a fallback still decrypts.
    settings.SECRET_KEY = "second-secret-key-0123456789"
    settings.SECRET_KEY_FALLBACKS = ["first-secret-key-0123456789"]
    assert tokens.decrypt(stored, channel="Phone") == TOKEN
    settings.SECRET_KEY_FALLBACKS = []
    with pytest.raises(tokens.TokenUnreadable):
        tokens.decrypt(stored, channel="Phone")


def test_a_malformed_key_is_an_error_naming_its_position_not_the_key(settings, key_a):
    settings.CHANNEL_TOKEN_KEYS = [key_a, "not-a-fernet-key"]
    (error,) = check_channel_token_keys()
    assert error.id == "messagecenter.E006"
    assert error.level == checks.ERROR
    assert error.msg == "CHANNEL_TOKEN_KEY entry 2 of 2 is not a Fernet key."
    assert "not-a-fernet-key" not in f"{error.msg} {error.hint}"


def test_good_keys_pass_the_check(settings, key_a, key_b):
    settings.CHANNEL_TOKEN_KEYS = [key_a, key_b]
    assert check_channel_token_keys() == []


def test_production_without_its_own_key_is_warned(settings):
    settings.CHANNEL_TOKEN_KEYS = []
    settings.DEBUG = False
    (warning,) = check_channel_token_keys()
    assert warning.id == "messagecenter.W001"
    assert warning.level == checks.WARNING
    settings.DEBUG = True
    assert check_channel_token_keys() == []
