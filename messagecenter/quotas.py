"""Per-user send quotas: at most so many notifications per rolling hour and per day.

Counted from the ``Notification`` rows themselves (every message a user
queued, whatever became of it), so there is no counter to drift. A message
to several channels counts once: the quota is what the user is told, in
notifications; what each channel's send costs the workers is limited by
the per-sender concurrency key (``tasks.sender_key``), where every
channel's send holds a slot, and the form allows at most 10 channels. The
defaults are settings (``SENDS_PER_HOUR``, ``SENDS_PER_DAY``); a
``SendQuota`` row, editable in the admin, overrides them for one user.

``reserve()`` runs inside the transaction that saves the notification and
first locks the user's ``SendQuota`` row: on Postgres a row lock, on SQLite
the write lock every IMMEDIATE transaction takes at BEGIN. Two submits of
the same user therefore count one after the other, and the quota is never
passed, however many arrive at once.
"""

from __future__ import annotations

import math
from datetime import datetime
from datetime import timedelta
from datetime import tzinfo

from django.conf import settings
from django.contrib.auth.models import User
from django.db import models
from django.db.models import Count
from django.db.models import Q
from django.utils import timezone

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


class SendQuota(models.Model):
    """One user's own limits; an empty one means the site's default."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        primary_key=True,
        on_delete=models.CASCADE,
        related_name="send_quota",
    )
    per_hour = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Notifications per rolling hour. Empty: the default (SENDS_PER_HOUR). "
        "0: none at all.",
    )
    per_day = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Notifications per rolling 24 hours. Empty: the default (SENDS_PER_DAY).",
    )
    note = models.CharField(
        max_length=250, blank=True, help_text="Why this user has their own limits."
    )

    class Meta:
        verbose_name = "send quota"

    def __str__(self) -> str:
        return f"Send quota of {self.user}"

    def windows(self) -> list[tuple[timedelta, int]]:
        """(window, limit) pairs, the hour first."""
        per_hour = settings.SENDS_PER_HOUR if self.per_hour is None else self.per_hour
        per_day = settings.SENDS_PER_DAY if self.per_day is None else self.per_day
        return [(HOUR, per_hour), (DAY, per_day)]


class QuotaReached(Exception):
    """Another send would pass a limit: how many were sent, and when one may be sent again."""

    def __init__(
        self, *, sent: int, limit: int, window: timedelta, next_at: datetime | None, now: datetime
    ) -> None:
        super().__init__(f"{sent} sent in {window}, limit {limit}")
        self.sent = sent
        self.limit = limit
        self.window = window
        # When the next send is allowed; None when the limit is 0.
        self.next_at = next_at
        self.now = now

    @property
    def retry_after(self) -> int | None:
        """Whole seconds until ``next_at`` (for the Retry-After header)."""
        if self.next_at is None:
            return None
        return max(1, math.ceil((self.next_at - self.now).total_seconds()))

    def message(self, zone: tzinfo | None = None) -> str:
        """The form's error, in plain words, with the time in ``zone`` (else the server's)."""
        per = "hour" if self.window == HOUR else "24 hours"
        if self.next_at is None:
            return "Your account may not send notifications. Contact support if that is wrong."
        local = timezone.localtime(self.next_at, zone)
        at = local.strftime("%H:%M")
        if local.date() != timezone.localtime(self.now, zone).date():
            at += local.strftime(" on %d %b").replace(" 0", " ")
        notifications = "notification" if self.sent == 1 else "notifications"
        return (
            f"You have sent {self.sent} {notifications} in the past {per}, the most your "
            f"account may send. You can send the next one in {wait_in_words(self.retry_after)} "
            f"(at {at} {local.tzname()})."
        )


def wait_in_words(seconds: int | None) -> str:
    if seconds is None:
        return ""
    minutes = math.ceil(seconds / 60)
    if minutes < 2:
        return "a minute"
    if minutes < 120:
        return f"{minutes} minutes"
    return f"about {round(minutes / 60)} hours"


def reserve(user: User, now: datetime | None = None) -> None:
    """Lock ``user``'s quota and raise QuotaReached if one more send would pass it.

    Call it inside the transaction that saves the notification: the lock is
    held until that transaction ends, so the next submit counts this one.
    """
    # Imported here: messagecenter.models imports this module for SendQuota.
    from messagecenter.models import Notification

    now = now or timezone.now()
    quota, _ = SendQuota.objects.select_for_update().get_or_create(user=user)
    windows = quota.windows()
    mine = Notification.objects.filter(owner=user)
    sent = mine.aggregate(
        **{
            f"w{n}": Count("pk", filter=Q(created_at__gt=now - window))
            for n, (window, _) in enumerate(windows)
        }
    )
    for n, (window, limit) in enumerate(windows):
        count: int = sent[f"w{n}"]
        if count < limit:
            continue
        next_at = None
        if limit:
            # The send allowed next: once the oldest sends that keep the
            # count at the limit have left the window.
            recent = mine.filter(created_at__gt=now - window).order_by("created_at")
            next_at = recent.values_list("created_at", flat=True)[count - limit] + window
        raise QuotaReached(sent=count, limit=limit, window=window, next_at=next_at, now=now)
