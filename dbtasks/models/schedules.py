"""The ticks of recurring schedules already enqueued: one row per tick, at most once."""

from __future__ import annotations

from django.db import models


class DBScheduleTick(models.Model):
    """One tick of a recurring schedule that has been enqueued (at most once)."""

    schedule = models.CharField(max_length=100)
    tick_at = models.DateTimeField()
    result_id = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "schedule tick"
        constraints = [
            models.UniqueConstraint(fields=["schedule", "tick_at"], name="dbtasks_tick_unique")
        ]

    def __str__(self) -> str:
        return f"{self.schedule} @ {self.tick_at.isoformat()}"
