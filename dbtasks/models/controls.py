"""The production controls' tables: paused queues, concurrency slots, rate-limit buckets."""

from __future__ import annotations

from django.db import models


class DBPausedQueue(models.Model):
    """A queue no worker claims from until it is resumed (``dbtasks.queues``)."""

    backend_name = models.CharField(max_length=100, default="default")
    queue_name = models.CharField(max_length=100)
    paused_at = models.DateTimeField()

    class Meta:
        verbose_name = "paused queue"
        constraints = [
            models.UniqueConstraint(
                fields=["backend_name", "queue_name"], name="dbtasks_paused_queue_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.queue_name} (paused)"


class DBSemaphore(models.Model):
    """A concurrency key's slots: at most ``limit`` of its tasks READY or RUNNING.

    ``in_use`` is kept in step with the rows holding a slot in the same
    transactions that change them (``dbtasks.sql.semaphores``), and recounted
    by every worker's maintenance, so a crash cannot leak a slot for ever.
    """

    backend_name = models.CharField(max_length=100, default="default")
    key = models.CharField(max_length=255)
    limit = models.PositiveIntegerField()
    in_use = models.PositiveIntegerField(default=0)

    class Meta:
        verbose_name = "concurrency limit"
        constraints = [
            models.UniqueConstraint(fields=["backend_name", "key"], name="dbtasks_semaphore_unique")
        ]

    def __str__(self) -> str:
        return f"{self.key}: {self.in_use}/{self.limit}"


class DBRateBucket(models.Model):
    """A rate limit's key on one queue: when its next task may start.

    A claim may start the key's tasks once ``next_at`` has come, and moves
    it on, in the transaction that claims them (``dbtasks.sql.rate_limits``).
    For limits of up to 100 starts per period ``starts`` logs the last
    ``limit`` of them (microseconds since the epoch): a sliding window.
    ``window_started_at`` and ``window_starts`` count the starts of the
    current period, for the ops page.
    """

    backend_name = models.CharField(max_length=100, default="default")
    queue_name = models.CharField(max_length=100)
    key = models.CharField(max_length=255)
    limit = models.PositiveIntegerField()
    period = models.DurationField()
    next_at = models.DateTimeField()
    starts = models.JSONField(default=list)
    window_started_at = models.DateTimeField(null=True, blank=True)
    window_starts = models.PositiveIntegerField(default=0)

    class Meta:
        verbose_name = "rate limit"
        constraints = [
            models.UniqueConstraint(
                fields=["backend_name", "queue_name", "key"], name="dbtasks_rate_bucket_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.key} on {self.queue_name}: {self.limit} per {self.period}"
