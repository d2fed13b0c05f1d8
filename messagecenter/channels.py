"""Each user's own ntfy destinations: a ``Channel`` is a server and a topic.

A new user gets a private channel on the default server (``NTFY_DEFAULT_SERVER``)
with a random topic nobody can guess, so what they send is theirs alone. An
empty ``server_url`` means "the default server", read when a message is
sent: moving the default server moves every channel that never chose one.

A channel's access token is write-only: the pages show its last four
characters, never the whole of it, and it is never logged. It is stored
encrypted (``messagecenter/tokens.py``): the row holds only the ciphertext.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING
from urllib.parse import quote

from django.conf import settings
from django.db import IntegrityError
from django.db import models
from django.db import transaction
from django.utils import timezone

from messagecenter import tokens

if TYPE_CHECKING:
    from django.contrib.auth.models import User

DEFAULT_CHANNEL_NAME = "My notifications"
# 24 random bytes: a 32-character URL-safe topic nobody can guess.
TOPIC_BYTES = 24


def random_topic() -> str:
    """A private topic name: ntfy allows 1-64 of [-_A-Za-z0-9]."""
    return secrets.token_urlsafe(TOPIC_BYTES)


def default_server() -> str:
    """The default ntfy server's URL, ending with a slash."""
    server: str = settings.NTFY_DEFAULT_SERVER
    return server if server.endswith("/") else f"{server}/"


class ChannelQuerySet(models.QuerySet["Channel"]):
    def owned_by(self, user: User) -> ChannelQuerySet:
        return self.filter(owner=user).order_by("name", "pk")


class Channel(models.Model):
    """Where a user's notifications go: an ntfy server, a topic, maybe a token."""

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="channels"
    )
    name = models.CharField(max_length=100)
    # Empty: the default server (NTFY_DEFAULT_SERVER), read at send time.
    server_url = models.URLField(max_length=300, blank=True)
    topic = models.CharField(max_length=64)
    # The access token, encrypted (Fernet); read and set it as ``token``.
    token_encrypted = models.TextField(blank=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    objects = ChannelQuerySet.as_manager()

    class Meta:
        ordering = ["name", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["owner", "name"], name="channel_owner_name_unique"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def server(self) -> str:
        """The server's URL, ending with a slash (the default server when none is set)."""
        if not self.server_url:
            return default_server()
        return self.server_url if self.server_url.endswith("/") else f"{self.server_url}/"

    @property
    def topic_url(self) -> str:
        """The topic's web address: ntfy's web app shows its messages there."""
        return f"{self.server}{quote(self.topic)}"

    @property
    def subscribe_url(self) -> str:
        """The ``ntfy://`` link the ntfy apps open to subscribe (also the QR code's)."""
        host_and_path = self.topic_url.split("://", 1)[1]
        if self.topic_url.startswith("http://"):
            # ntfy's apps assume https; plain http must be asked for.
            return f"ntfy://{host_and_path}?secure=false"
        return f"ntfy://{host_and_path}"

    @property
    def token(self) -> str:
        """The access token, decrypted ("" for none); raise ``tokens.TokenUnreadable``."""
        return tokens.decrypt(self.token_encrypted, channel=self.name)

    @token.setter
    def token(self, value: str) -> None:
        self.token_encrypted = tokens.encrypt(value)

    @property
    def token_hint(self) -> str:
        """What the pages show of the token: its last four characters.

        A token of eight characters or fewer shows none (four would be half of it).
        """
        if not self.token_encrypted:
            return ""
        try:
            token = self.token
        except tokens.TokenUnreadable:
            return "(saved, but unreadable with the current key)"
        return f"…{token[-4:]}" if len(token) > 8 else "(saved)"


def default_channel(user: User) -> Channel:
    """The user's first channel, made (a private random topic) when they have none."""
    channel = Channel.objects.owned_by(user).first()
    if channel is not None:
        return channel
    try:
        with transaction.atomic():
            return Channel.objects.create(
                owner=user, name=DEFAULT_CHANNEL_NAME, topic=random_topic()
            )
    except IntegrityError:
        # A concurrent request made it first (same owner and name).
        return Channel.objects.get(owner=user, name=DEFAULT_CHANNEL_NAME)
