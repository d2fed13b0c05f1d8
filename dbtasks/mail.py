"""A Django email backend that sends through the task queue.

Point ``EMAIL_BACKEND`` at ``dbtasks.mail.TaskEmailBackend`` and name the
backend that really sends in ``DBTASKS_EMAIL_BACKEND`` (SMTP in production,
console or file locally)::

    EMAIL_BACKEND = "dbtasks.mail.TaskEmailBackend"
    DBTASKS_EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"

Every ``send_mail()``, password-reset email or ``EmailMessage.send()`` then
enqueues one ``send_email`` task per message and returns at once: the
request never waits for the mail server, and a failed send is retried by the
backend's retry policy. Enqueued inside a transaction (with the database
backend), the mail is sent only if the transaction commits.

A message travels as its RFC 5322 bytes (base64 in the task's JSON
arguments) with its envelope (sender and every recipient, Bcc included), so
attachments, alternatives and headers arrive exactly as built.
"""

from __future__ import annotations

import base64
import email
import email.policy
from collections.abc import Sequence
from typing import Any

from django.conf import settings
from django.core.mail import EmailMessage
from django.core.mail import get_connection
from django.core.mail.backends.base import BaseEmailBackend

from dbtasks.compat import task

DEFAULT_REAL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"


def real_backend_path() -> str:
    """The backend ``send_email`` hands messages to (``DBTASKS_EMAIL_BACKEND``)."""
    path: str = getattr(settings, "DBTASKS_EMAIL_BACKEND", DEFAULT_REAL_BACKEND)
    if path == f"{__name__}.TaskEmailBackend":
        # Sending would enqueue again, forever.
        raise ValueError("DBTASKS_EMAIL_BACKEND must name the backend that really sends.")
    return path


class TaskEmailBackend(BaseEmailBackend):
    """Enqueue each message as a ``send_email`` task instead of sending it now."""

    def send_messages(self, email_messages: Sequence[EmailMessage]) -> int:
        queued = 0
        for message in email_messages:
            recipients = message.recipients()
            if not recipients:
                continue  # Django's backends skip these too
            raw = base64.b64encode(message.message().as_bytes()).decode("ascii")
            send_email.enqueue(raw, message.from_email, list(recipients))
            queued += 1
        return queued


class RawEmailMessage(EmailMessage):
    """An already-built message, handed to a real backend as it is."""

    def __init__(self, raw: bytes, from_email: str, recipients: list[str]) -> None:
        self.raw = raw
        self.envelope_recipients = recipients
        # The subject too, for whoever reads it back (locmem's outbox in tests).
        super().__init__(subject=str(self.message()["Subject"] or ""), from_email=from_email)

    def message(self, *args: Any, **kwargs: Any) -> Any:
        return email.message_from_bytes(self.raw, policy=email.policy.default)

    def recipients(self) -> list[str]:
        return self.envelope_recipients


@task
def send_email(raw_message: str, from_email: str, recipients: list[str]) -> int:
    """Send one message through ``DBTASKS_EMAIL_BACKEND``; a failure raises (and is retried)."""
    message = RawEmailMessage(base64.b64decode(raw_message), from_email, recipients)
    connection = get_connection(real_backend_path(), fail_silently=False)
    sent = connection.send_messages([message])
    if not sent:
        raise RuntimeError(f"{real_backend_path()} did not send the message to {recipients}.")
    return sent
