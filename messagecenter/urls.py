"""URLs of Message Center: the page, its live channel and actions, sign-in, admin, operations."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include
from django.urls import path

from messagecenter import accounts
from messagecenter import channel_views
from messagecenter import live
from messagecenter import views

FORM_PAGE = "registration/form_page.html"
MESSAGE_PAGE = accounts.MESSAGE_PAGE

urlpatterns = [
    path("", views.index, name="index"),
    path("notifications/live/", live.poll, name="live"),
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
    # Sign-in, sign-out, password change and reset, from Django's auth views
    # (with this site's templates), and sign-up with email verification
    # (accounts.py). LoginRequiredMiddleware lets anonymous visitors reach
    # only these: the views are marked @login_not_required.
    path("accounts/login/", accounts.ThrottledLoginView.as_view(), name="login"),
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
    path("accounts/sign-up/", accounts.sign_up, name="sign-up"),
    path("accounts/sign-up/done/", accounts.sign_up_done, name="sign-up-done"),
    path("accounts/verify/<uidb64>/<token>/", accounts.verify_email, name="verify-email"),
    path(
        "accounts/password_reset/",
        accounts.ThrottledPasswordResetView.as_view(
            template_name=FORM_PAGE,
            email_template_name="registration/password_reset_email.txt",
            subject_template_name="registration/password_reset_subject.txt",
            extra_context={
                "heading": "Reset your password",
                "lead": "Enter your account's email address: we send you a link to choose "
                "a new password.",
                "submit": "Send the link",
            },
        ),
        name="password_reset",
    ),
    path(
        "accounts/password_reset/done/",
        auth_views.PasswordResetDoneView.as_view(
            template_name=MESSAGE_PAGE,
            extra_context={
                "heading": "Check your email",
                "lead": "If an account uses that address, a link to reset its password is "
                "on its way.",
            },
        ),
        name="password_reset_done",
    ),
    path(
        "accounts/reset/<uidb64>/<token>/",
        auth_views.PasswordResetConfirmView.as_view(
            template_name=FORM_PAGE,
            extra_context={"heading": "Choose a new password", "submit": "Save the password"},
        ),
        name="password_reset_confirm",
    ),
    path(
        "accounts/reset/done/",
        auth_views.PasswordResetCompleteView.as_view(
            template_name=MESSAGE_PAGE,
            extra_context={"heading": "Password changed", "lead": "Sign in with the new one."},
        ),
        name="password_reset_complete",
    ),
    path("admin/", admin.site.urls),
    # dbtasks' operations dashboard and Prometheus metrics: staff only (404
    # for everyone else), or a bearer token for the metrics scraper.
    path("ops/", include("dbtasks.urls")),
]
