"""URLs of the ops dashboard and metrics: ``path("ops/", include("dbtasks.urls"))``.

Reverse them as ``dbtasks:ops``, ``dbtasks:ops-panels`` and ``dbtasks:metrics``.
"""

from __future__ import annotations

from django.urls import path

from dbtasks.ops import views

app_name = "dbtasks"

urlpatterns = [
    path("", views.ops, name="ops"),
    path("panels/", views.ops_panels, name="ops-panels"),
    path("metrics/", views.metrics, name="metrics"),
]
