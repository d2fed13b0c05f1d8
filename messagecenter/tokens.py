"""Channel access tokens, encrypted at rest with Fernet (the ``cryptography`` library).

A ``Channel`` row holds only the ciphertext; ``channel.token`` decrypts it
when a message is sent. A stolen database dump or backup shows no token.

The keys: ``CHANNEL_TOKEN_KEYS`` (the ``CHANNEL_TOKEN_KEY`` environment
variable, comma-separated Fernet keys). The first encrypts, every one
decrypts (``MultiFernet``), so a key is rotated by putting the new one first
and running ``manage.py rotate_channel_tokens``. Without the setting, a key
is derived from ``SECRET_KEY`` (and one from each of ``SECRET_KEY_FALLBACKS``,
so Django's own key rotation keeps tokens readable); production sets its own
key (``messagecenter.W001`` says so), so that a new ``SECRET_KEY`` never
loses the tokens.
"""

from __future__ import annotations

import base64
import binascii

from cryptography.fernet import Fernet
from cryptography.fernet import InvalidToken
from cryptography.fernet import MultiFernet
from django.conf import settings
from django.utils.crypto import salted_hmac

SALT = "messagecenter.tokens.channel-token-key"


class TokenUnreadable(Exception):
    """A stored token cannot be decrypted with any of the configured keys."""


def derived_key(secret: str) -> bytes:
    """A Fernet key derived from a Django secret (32 bytes of HMAC-SHA256, base64)."""
    digest = salted_hmac(SALT, "channel tokens", secret=secret, algorithm="sha256").digest()
    return base64.urlsafe_b64encode(digest)


def configured_keys() -> list[bytes]:
    """The keys, the encrypting one first: CHANNEL_TOKEN_KEYS, else derived from SECRET_KEY."""
    keys: list[str] = list(getattr(settings, "CHANNEL_TOKEN_KEYS", []))
    if keys:
        return [key.encode() for key in keys]
    secrets = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]
    return [derived_key(secret) for secret in secrets if secret]


def malformed_keys() -> list[int]:
    """The 1-based positions of CHANNEL_TOKEN_KEYS entries that are not Fernet keys."""
    bad = []
    for position, key in enumerate(getattr(settings, "CHANNEL_TOKEN_KEYS", []), start=1):
        try:
            Fernet(key.encode())
        except (ValueError, binascii.Error):
            bad.append(position)
    return bad


def fernet() -> MultiFernet:
    return MultiFernet([Fernet(key) for key in configured_keys()])


def encrypt(token: str) -> str:
    """The ciphertext to store for ``token`` ("" stays "": no token)."""
    return fernet().encrypt(token.encode()).decode() if token else ""


def decrypt(ciphertext: str, *, channel: str) -> str:
    """The token stored as ``ciphertext``; raise TokenUnreadable, naming ``channel``."""
    if not ciphertext:
        return ""
    try:
        return fernet().decrypt(ciphertext.encode()).decode()
    except InvalidToken:
        raise TokenUnreadable(
            f"The access token of channel {channel!r} cannot be decrypted with the configured "
            "CHANNEL_TOKEN_KEY (was the key, or SECRET_KEY, changed?). Add the old key after "
            "the new one in CHANNEL_TOKEN_KEY, or save the token again on the Channels page."
        ) from None


def rotate(ciphertext: str) -> str:
    """``ciphertext`` encrypted again with the first key (raise InvalidToken if no key opens it)."""
    return fernet().rotate(ciphertext.encode()).decode() if ciphertext else ""
