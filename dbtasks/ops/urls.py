"""URLs of the ops dashboard and metrics: ``path("ops/", include("dbtasks.urls"))``.

Reverse them as ``dbtasks:ops``, ``dbtasks:ops-panels``, ``dbtasks:metrics``,
``dbtasks:queue-pause`` and ``dbtasks:queue-resume``.
"""

from __future__ import annotations

from django.urls import path

from dbtasks.ops import views

app_name = "dbtasks"

urlpatterns = [
    path("", views.ops, name="ops"),
    path("panels/", views.ops_panels, name="ops-panels"),
    path("metrics/", views.metrics, name="metrics"),
    path("queues/pause/", views.queue_control, {"action": "pause"}, name="queue-pause"),
    path("queues/resume/", views.queue_control, {"action": "resume"}, name="queue-resume"),
]
