"""Throttling of sign-in, sign-up and password reset, checked before any password is hashed.

Counters live in the database (``ThrottleCount``), so every web worker and
process shares them, on SQLite and Postgres alike, with nothing more to run.
Each limit is a fixed window: at most ``max_hits`` in ``window``; the count
starts again with the next window, so a block never outlasts its window.

Sign-in has three limits, so that an attacker cannot lock a real user out
for long (the user's own address has its own count):

- per client address: every attempt counts (one address guessing many
  accounts);
- per account and address: failures count (guessing one account's password);
- per account from anywhere: failures count, with a higher limit (a guess
  spread over many addresses); it blocks the account at most one window.

A refused request is answered at once (429, with how long to wait): the
password is never hashed, so a flood of attempts cannot tie up the web
workers in hashing.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from datetime import datetime
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError
from django.db import models
from django.db import transaction
from django.db.models import F
from django.http import HttpRequest
from django.utils import timezone


class ThrottleCount(models.Model):
    """How many hits one key had in one window."""

    # The limit's name and a hash of the subject (an address, an account).
    key = models.CharField(max_length=100)
    window_start = models.DateTimeField()
    hits = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["key", "window_start"], name="throttle_key_window"),
        ]
        indexes = [models.Index(fields=["window_start"], name="throttle_window")]

    def __str__(self) -> str:
        return f"{self.key.split(':')[0]}: {self.hits} since {self.window_start:%H:%M}"


@dataclass(frozen=True, slots=True)
class Limit:
    name: str
    max_hits: int
    window: timedelta

    def key(self, subject: str) -> str:
        digest = hashlib.sha256(f"{settings.SECRET_KEY}:{subject}".encode()).hexdigest()
        return f"{self.name}:{digest[:64]}"

    def window_start(self, now: datetime) -> datetime:
        seconds = self.window.total_seconds()
        start = math.floor(now.timestamp() / seconds) * seconds
        return datetime.fromtimestamp(start, tz=now.tzinfo)

    def wait(self, subject: str) -> float | None:
        """Seconds until ``subject`` may try again, or None when it may now."""
        now = timezone.now()
        start = self.window_start(now)
        row = ThrottleCount.objects.filter(key=self.key(subject), window_start=start).first()
        if row is None or row.hits < self.max_hits:
            return None
        return (start + self.window - now).total_seconds()

    def hit(self, subject: str) -> None:
        """Count one hit for ``subject`` in the current window."""
        start = self.window_start(timezone.now())
        key = self.key(subject)
        counted = ThrottleCount.objects.filter(key=key, window_start=start)
        if counted.update(hits=F("hits") + 1):
            return
        try:
            with transaction.atomic():
                ThrottleCount.objects.create(key=key, window_start=start, hits=1)
        except IntegrityError:
            counted.update(hits=F("hits") + 1)  # another request made the row first
        # A new window: drop this key's ended ones (they only ever count once).
        ThrottleCount.objects.filter(key=key, window_start__lt=start).delete()


SIGN_IN_PER_ADDRESS = Limit("sign-in:address", 30, timedelta(minutes=5))
SIGN_IN_FAILURES_PER_ACCOUNT_AND_ADDRESS = Limit(
    "sign-in:account+address", 5, timedelta(minutes=15)
)
SIGN_IN_FAILURES_PER_ACCOUNT = Limit("sign-in:account", 50, timedelta(minutes=15))
SIGN_UP_PER_ADDRESS = Limit("sign-up:address", 5, timedelta(hours=1))
RESET_PER_ADDRESS = Limit("reset:address", 10, timedelta(hours=1))
RESET_PER_EMAIL = Limit("reset:email", 3, timedelta(hours=1))


def client_address(request: HttpRequest) -> str:
    """The client's address: REMOTE_ADDR, or what the declared proxy says it saw.

    With TRUST_X_FORWARDED_FOR, the proxy in front appends the address it
    saw to X-Forwarded-For: the last entry. Earlier ones come from the
    client and prove nothing.
    """
    if settings.TRUST_X_FORWARDED_FOR:
        forwarded = str(request.META.get("HTTP_X_FORWARDED_FOR", ""))
        last = forwarded.rsplit(",", 1)[-1].strip()
        if last:
            return last
    return str(request.META.get("REMOTE_ADDR", ""))


def first_wait(*checks: tuple[Limit, str]) -> float | None:
    """The longest wait any of the (limit, subject) pairs asks for, or None."""
    waits = [wait for limit, subject in checks if (wait := limit.wait(subject)) is not None]
    return max(waits) if waits else None


def wait_message(seconds: float, what: str) -> str:
    minutes = max(1, math.ceil(seconds / 60))
    unit = "minute" if minutes == 1 else "minutes"
    return f"Too many {what}. Try again in {minutes} {unit}."
