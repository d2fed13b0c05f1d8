"""dbtasks.mail.TaskEmailBackend: Django's mail sent by a worker, with retries.

The caller only enqueues; nothing waits for the mail server in a request.
"""

from __future__ import annotations

from typing import ClassVar

import pytest
from django.core import mail
from django.core.mail import EmailMessage
from django.core.mail import EmailMultiAlternatives
from django.core.mail import send_mail
from django.core.mail.backends.locmem import EmailBackend as LocmemBackend
from django.db import transaction

from dbtasks.compat import TaskResultStatus
from dbtasks.mail import send_email
from dbtasks.models import DBTaskResult
from tests.conftest import run_worker

pytestmark = pytest.mark.django_db(transaction=True)


class FlakyBackend(LocmemBackend):
    """Fails the first ``failures`` sends, as a mail server that is down for a while."""

    failures: ClassVar[int] = 0

    def send_messages(self, messages):
        if FlakyBackend.failures > 0:
            FlakyBackend.failures -= 1
            raise ConnectionRefusedError("the mail server is down")
        return super().send_messages(messages)


@pytest.fixture(autouse=True)
def task_email(settings):
    settings.EMAIL_BACKEND = "dbtasks.mail.TaskEmailBackend"
    settings.DBTASKS_EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"


def test_send_mail_enqueues_and_a_worker_sends_it():
    assert send_mail("Hello", "Body text", "from@example.com", ["to@example.com"]) == 1
    assert mail.outbox == []  # nothing sent in the caller
    (row,) = DBTaskResult.objects.all()
    assert row.task_path == "dbtasks.mail.send_email"

    run_worker()
    (sent,) = mail.outbox
    parsed = sent.message()
    assert parsed["Subject"] == "Hello"
    assert parsed["From"] == "from@example.com"
    assert parsed.get_content().strip() == "Body text"
    assert sent.recipients() == ["to@example.com"]


def test_attachments_alternatives_and_bcc_arrive_as_built():
    message = EmailMultiAlternatives(
        "Report", "plain", "from@example.com", ["to@example.com"], bcc=["hidden@example.com"]
    )
    message.attach_alternative("<p>html</p>", "text/html")
    message.attach("report.csv", "a,b\n1,2\n", "text/csv")
    message.send()
    run_worker()

    (sent,) = mail.outbox
    assert sent.recipients() == ["to@example.com", "hidden@example.com"]
    parsed = sent.message()
    assert "hidden@example.com" not in parsed.as_string()  # Bcc is envelope only
    parts = {part.get_content_type(): part for part in parsed.walk()}
    assert parts["text/html"].get_content().strip() == "<p>html</p>"
    assert parts["text/csv"].get_filename() == "report.csv"
    assert parts["text/csv"].get_content() == "a,b\n1,2\n"


def test_a_failing_mail_server_is_retried(settings):
    settings.DBTASKS_EMAIL_BACKEND = f"{__name__}.FlakyBackend"
    FlakyBackend.failures = 2  # the test settings allow 3 attempts, retried at once
    send_mail("Retry me", "Body", "from@example.com", ["to@example.com"])
    run_worker()

    (row,) = DBTaskResult.objects.all()
    result = send_email.get_result(str(row.pk))
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.attempts == 3
    assert [m.subject for m in mail.outbox] == ["Retry me"]


def test_mail_from_a_rolled_back_transaction_is_never_sent():
    def failing_request() -> None:
        with transaction.atomic():
            EmailMessage("Never", "Body", "from@example.com", ["to@example.com"]).send()
            raise RuntimeError("the request failed")

    with pytest.raises(RuntimeError):
        failing_request()
    assert not DBTaskResult.objects.exists()


def test_the_real_backend_cannot_be_the_task_backend_itself(settings):
    settings.DBTASKS_EMAIL_BACKEND = "dbtasks.mail.TaskEmailBackend"
    send_mail("Loop", "Body", "from@example.com", ["to@example.com"])
    run_worker()
    (row,) = DBTaskResult.objects.all()
    result = send_email.get_result(str(row.pk))
    assert result.status == TaskResultStatus.FAILED
    assert "DBTASKS_EMAIL_BACKEND must name the backend that really sends" in (
        result.errors[-1].traceback
    )
