"""A URLconf for the ops dashboard tests, until the project's urls.py includes dbtasks.urls."""

from __future__ import annotations

from django.contrib import admin
from django.urls import include
from django.urls import path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("ops/", include("dbtasks.urls")),
]
