"""Encrypt every channel's access token again with the first CHANNEL_TOKEN_KEY.

Key rotation: put the new key first in CHANNEL_TOKEN_KEY (the old one after
it, so both still decrypt), deploy, run this, then drop the old key.
"""

from __future__ import annotations

from typing import Any

from cryptography.fernet import InvalidToken
from django.core.management.base import BaseCommand
from django.core.management.base import CommandError

from messagecenter import tokens
from messagecenter.channels import Channel


class Command(BaseCommand):
    help = "Encrypt every channel's access token again with the first CHANNEL_TOKEN_KEY."

    def handle(self, *args: Any, **options: Any) -> None:
        rotated = 0
        unreadable = []
        channels = Channel.objects.exclude(token_encrypted="").only("pk", "token_encrypted")
        for channel in channels.iterator():
            try:
                ciphertext = tokens.rotate(channel.token_encrypted)
            except InvalidToken:
                unreadable.append(channel.pk)
                continue
            # Only if unchanged meanwhile: a token saved since is already under the new key.
            rotated += Channel.objects.filter(
                pk=channel.pk, token_encrypted=channel.token_encrypted
            ).update(token_encrypted=ciphertext)
        self.stdout.write(f"Encrypted {rotated} token(s) again with the first key.")
        if unreadable:
            ids = ", ".join(map(str, unreadable))
            raise CommandError(
                f"{len(unreadable)} token(s) no configured key can decrypt (channel ids {ids}): "
                "add the key they were saved with to CHANNEL_TOKEN_KEY, or save them again."
            )
