"""URLs of Message Center: the page, its two htmx endpoints, sign-in, admin, operations."""

from __future__ import annotations

from django.contrib import admin
from django.urls import include
from django.urls import path

from messagecenter import views

urlpatterns = [
    path("", views.index, name="index"),
    path(
        "notifications/<int:pk>/status/",
        views.notification_status,
        name="notification-status",
    ),
    path(
        "notifications/<int:pk>/retry/",
        views.notification_retry,
        name="notification-retry",
    ),
    # login/ and logout/ (and password change) from Django's auth views.
    # LoginView is marked @login_not_required, so LoginRequiredMiddleware
    # lets anonymous visitors reach it.
    path("accounts/", include("django.contrib.auth.urls")),
    path("admin/", admin.site.urls),
    # dbtasks' operations dashboard and Prometheus metrics: staff only (404
    # for everyone else), or a bearer token for the metrics scraper.
    path("ops/", include("dbtasks.urls")),
]
