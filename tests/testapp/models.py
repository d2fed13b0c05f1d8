"""A side table where fixture tasks record their runs (counted across processes)."""

from __future__ import annotations

from django.db import models


class TaskRun(models.Model):
    key = models.CharField(max_length=100, db_index=True)
    pid = models.PositiveIntegerField(default=0)
    ran_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.key
