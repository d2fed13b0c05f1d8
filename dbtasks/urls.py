"""``path("ops/", include("dbtasks.urls"))``: the ops dashboard and metrics (``dbtasks.ops``)."""

from __future__ import annotations

from dbtasks.ops.urls import app_name
from dbtasks.ops.urls import urlpatterns

__all__ = ["app_name", "urlpatterns"]
