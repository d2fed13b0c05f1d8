"""Live worker processes and their heartbeats; a worker gone quiet is presumed lost."""

from __future__ import annotations

from django.db import models

from dbtasks.models.states import MAX_LENGTH_WORKER_ID


class DBWorker(models.Model):
    """A live worker process; ``heartbeat_at`` proves it is still there."""

    worker_id = models.CharField(max_length=MAX_LENGTH_WORKER_ID, unique=True)
    backend_name = models.CharField(max_length=100)
    hostname = models.CharField(max_length=255)
    pid = models.PositiveIntegerField()
    queues = models.JSONField(default=list)
    threads = models.PositiveSmallIntegerField(default=1)
    started_at = models.DateTimeField()
    heartbeat_at = models.DateTimeField(db_index=True)

    class Meta:
        verbose_name = "worker"

    def __str__(self) -> str:
        return self.worker_id
