"""Accounts: sign up with email verification, and reset a forgotten password.

Sign-up makes an inactive user and mails a link; following it activates the
account, and the user signs in. Every email goes out through Django's
``send_mail``, so with ``EMAIL_BACKEND = "dbtasks.mail.TaskEmailBackend"``
(settings.py) a worker sends it and the request never waits for a mail
server. Password reset is Django's own views with this site's templates
(urls.py).

The verification link's token is Django's reset token with its own salt,
hashed with ``is_active``: a password-reset link cannot verify an account,
and a verification link works once.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_not_required
from django.contrib.auth.forms import UserCreationForm
from django.contrib.auth.models import User
from django.contrib.auth.tokens import PasswordResetTokenGenerator
from django.contrib.auth.views import LoginView
from django.contrib.auth.views import PasswordResetView
from django.core.mail import send_mail
from django.db import transaction
from django.http import HttpRequest
from django.http import HttpResponse
from django.shortcuts import redirect
from django.shortcuts import render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.encoding import force_bytes
from django.utils.encoding import force_str
from django.utils.http import urlsafe_base64_decode
from django.utils.http import urlsafe_base64_encode
from django.views.decorators.http import require_http_methods

from messagecenter import throttle
from messagecenter.throttle import client_address

MESSAGE_PAGE = "registration/message_page.html"


class VerificationTokenGenerator(PasswordResetTokenGenerator):
    key_salt = "messagecenter.accounts.VerificationTokenGenerator"

    def _make_hash_value(self, user: Any, timestamp: int) -> str:
        # Activating the account changes the hash: the link works once.
        return f"{super()._make_hash_value(user, timestamp)}{user.is_active}"


verification_tokens = VerificationTokenGenerator()


class SignUpForm(UserCreationForm[User]):
    """A user name, an email address the link is sent to, and a password twice."""

    email = forms.EmailField(
        max_length=254, help_text="We send a link there to confirm the account is yours."
    )

    class Meta(UserCreationForm.Meta):
        model = User
        fields = ("username", "email")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)

    def clean_email(self) -> str:
        address: str = self.cleaned_data["email"].strip()
        if get_user_model().objects.filter(email__iexact=address).exists():
            raise forms.ValidationError(
                "An account already uses this address: sign in, or reset its password.",
                code="email_taken",
            )
        return address


class ThrottledLoginView(LoginView):
    """Django's sign-in, refusing (429) before any hashing when a limit is reached."""

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        address = client_address(request)
        account = str(request.POST.get("username", "")).strip().lower()[:150]
        pair = f"{account}|{address}"
        wait = throttle.first_wait(
            (throttle.SIGN_IN_PER_ADDRESS, address),
            (throttle.SIGN_IN_FAILURES_PER_ACCOUNT_AND_ADDRESS, pair),
            (throttle.SIGN_IN_FAILURES_PER_ACCOUNT, account),
        )
        if wait is not None:
            return refused(self, request, throttle.wait_message(wait, "sign-in attempts"))
        throttle.SIGN_IN_PER_ADDRESS.hit(address)
        response = super().post(request, *args, **kwargs)
        if response.status_code != 302:  # the password was wrong
            throttle.SIGN_IN_FAILURES_PER_ACCOUNT_AND_ADDRESS.hit(pair)
            throttle.SIGN_IN_FAILURES_PER_ACCOUNT.hit(account)
        return response


class ThrottledPasswordResetView(PasswordResetView):
    """Django's password reset, at most a few emails per address and per hour."""

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        address = client_address(request)
        email = str(request.POST.get("email", "")).strip().lower()[:254]
        wait = throttle.first_wait(
            (throttle.RESET_PER_ADDRESS, address), (throttle.RESET_PER_EMAIL, email)
        )
        if wait is not None:
            return refused(self, request, throttle.wait_message(wait, "password reset requests"))
        throttle.RESET_PER_ADDRESS.hit(address)
        throttle.RESET_PER_EMAIL.hit(email)
        return super().post(request, *args, **kwargs)


def refused(
    view: LoginView | PasswordResetView, request: HttpRequest, message: str
) -> HttpResponse:
    """The page again with a blank form and ``message``: nothing was checked."""
    if isinstance(view, LoginView):
        form: forms.Form = view.get_form_class()(request)
    else:
        form = view.get_form_class()()
    context = view.get_context_data(form=form, throttled=message)
    return view.render_to_response(context, status=429)


@login_not_required
@require_http_methods(["GET", "POST"])
def sign_up(request: HttpRequest) -> HttpResponse:
    """Make an inactive account and mail its verification link."""
    if request.method == "POST":
        address = client_address(request)
        wait = throttle.SIGN_UP_PER_ADDRESS.wait(address)
        if wait is not None:
            context = sign_up_context(SignUpForm())
            context["throttled"] = throttle.wait_message(wait, "sign-ups from your address")
            return render(request, "registration/sign_up.html", context, status=429)
        throttle.SIGN_UP_PER_ADDRESS.hit(address)
    form = SignUpForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        with transaction.atomic():
            user = form.save(commit=False)
            user.is_active = False
            user.save()
            send_verification(request, user)
        return redirect("sign-up-done")
    status = 422 if form.errors else 200
    return render(request, "registration/sign_up.html", sign_up_context(form), status=status)


def sign_up_context(form: SignUpForm) -> dict[str, Any]:
    return {
        "form": form,
        "heading": "Create an account",
        "lead": "Send push notifications to your own ntfy topics.",
        "submit": "Sign up",
    }


def send_verification(request: HttpRequest, user: User) -> None:
    """Mail the link (enqueued with the account, in the same transaction)."""
    path = reverse(
        "verify-email",
        kwargs={
            "uidb64": urlsafe_base64_encode(force_bytes(user.pk)),
            "token": verification_tokens.make_token(user),
        },
    )
    context = {"user": user, "link": request.build_absolute_uri(path)}
    body = render_to_string("registration/verify_email.txt", context)
    send_mail("Confirm your Message Center account", body, None, [user.email])


@login_not_required
def sign_up_done(request: HttpRequest) -> HttpResponse:
    context = {
        "heading": "Check your email",
        "lead": "We sent you a link to confirm your address. Follow it, then sign in.",
    }
    return render(request, MESSAGE_PAGE, context)


@login_not_required
def verify_email(request: HttpRequest, uidb64: str, token: str) -> HttpResponse:
    """Activate the account the link names, if the link is valid; then sign in."""
    user_model = get_user_model()
    try:
        user = user_model.objects.get(pk=force_str(urlsafe_base64_decode(uidb64)))
    except (TypeError, ValueError, OverflowError, user_model.DoesNotExist):
        user = None
    if user is None or user.is_active or not verification_tokens.check_token(user, token):
        context = {
            "heading": "This link is not valid",
            "lead": "It was used already (then just sign in), or it has expired: sign up again.",
        }
        return render(request, MESSAGE_PAGE, context, status=400)
    user.is_active = True
    user.save(update_fields=["is_active"])
    messages.success(request, "Your email address is confirmed. Sign in to start.")
    return redirect("login")
