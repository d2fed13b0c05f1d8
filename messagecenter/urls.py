"""URLs of Message Center: the page, its live channel and actions, sign-in, admin, operations."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include
from django.urls import path

from messagecenter import channel_views
from messagecenter import views

urlpatterns = [
    path("", views.index, name="index"),
    path("notifications/live/", views.live, name="live"),
    path(
        "notifications/<int:pk>/attempts/",
        views.notification_attempts,
        name="notification-attempts",
    ),
    path(
        "notifications/<int:pk>/retry/",
        views.notification_retry,
        name="notification-retry",
    ),
    path(
        "notifications/<int:pk>/cancel/",
        views.notification_cancel,
        name="notification-cancel",
    ),
    path("channels/", channel_views.channel_list, name="channel-list"),
    path("channels/<int:pk>/", channel_views.channel_detail, name="channel-detail"),
    path("channels/<int:pk>/delete/", channel_views.channel_delete, name="channel-delete"),
    path("channels/<int:pk>/test/", channel_views.channel_test, name="channel-test"),
    # Sign-in, sign-out and password change, from Django's auth views.
    # LoginView is marked @login_not_required, so LoginRequiredMiddleware lets
    # anonymous visitors reach it: the only page open to them. Not
    # include("django.contrib.auth.urls"): its four password-reset views are
    # @login_not_required too, so anonymous visitors could reach pages this
    # app never links to, and each reset request for a known address made
    # the server try to send email, which this project does not configure.
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path(
        "accounts/password_change/",
        auth_views.PasswordChangeView.as_view(),
        name="password_change",
    ),
    path(
        "accounts/password_change/done/",
        auth_views.PasswordChangeDoneView.as_view(),
        name="password_change_done",
    ),
    path("admin/", admin.site.urls),
    # dbtasks' operations dashboard and Prometheus metrics: staff only (404
    # for everyone else), or a bearer token for the metrics scraper.
    path("ops/", include("dbtasks.urls")),
]
