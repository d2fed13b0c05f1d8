"""End to end in one process: the page queues, the worker delivers to the stand-in ntfy.

The worker runs tasks in its own threads and connections, so these tests
use ``transactional_db``. tests/settings.py allows 3 attempts and retries at
once (backoff factor 0) unless a test says otherwise.
"""

from __future__ import annotations

import datetime as dt

import pytest
from django.db.models import F
from django.tasks import TaskResultStatus
from django.utils import timezone

from dbtasks.models import BLOCKED
from dbtasks.models import DBTaskResult
from dbtasks.sql.purge import purge_older
from messagecenter.channels import default_channel
from messagecenter.models import Notification
from messagecenter.tasks import send_notification
from tests.conftest import run_worker
from tests.deliveries import seen
from tests.deliveries import send_id
from tests.html import parse
from tests.messagecenter.conftest import HTMX
from tests.ntfy_server import Reply

SEND = "messagecenter.tasks.send_notification"  # a notification's sends, not its report


pytestmark = pytest.mark.django_db(transaction=True)


def pass_time_for_tasks(*, seconds: float) -> None:
    """Make every waiting task due ``seconds`` sooner, as if that much time had passed.

    The worker keeps the database server's time, which no time machine
    moves: the rows' times move instead.
    """
    DBTaskResult.objects.update(
        available_after=F("available_after") - dt.timedelta(seconds=seconds)
    )


def send(client, **fields):
    """Submit the form as a browser without JavaScript; return the new notification."""
    data = {"message": "Hello", "priority": "3", **fields}
    response = client.post("/", data)
    assert response.status_code == 302, response.content.decode()
    return Notification.objects.latest("created_at")


def result_of(notification):
    notification.refresh_from_db()
    return send_notification.get_result(send_id(notification))


def row_of(client, notification):
    return parse(client.get("/").content).find(f"#notification-{notification.pk}")


def test_success_delivers_exactly_what_was_typed(signed_in, alice, ntfy):
    channel = default_channel(alice)
    channel.token = "tk_test"
    channel.save()
    notification = send(
        signed_in,
        message="Disk almost full",
        title="db-1",
        priority="4",
        tags="warning, floppy_disk",
    )
    run_worker()

    (request,) = ntfy.requests
    assert request.headers["authorization"] == "Bearer tk_test"
    # To alice's own private topic, with her channel's token.
    assert request.json == {
        "topic": channel.topic,
        "message": "Disk almost full",
        "title": "db-1",
        "priority": 4,
        "tags": ["warning", "floppy_disk"],
    }
    result = result_of(notification)
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.attempts == 1
    assert result.return_value["topic"] == channel.topic


def error_detail(row):
    """The exact error, in the row's "Error details" disclosure."""
    return row.find("details.error-detail").find("code").text


def test_the_row_shows_ntfys_message_id(signed_in, ntfy):
    ntfy.reply_always(Reply(body={"id": "sPs71M8A2T", "time": 1700000000, "topic": "test-topic"}))
    notification = send(signed_in)
    run_worker()

    assert result_of(notification).return_value == {
        "id": "sPs71M8A2T",
        "time": 1700000000,
        "topic": "test-topic",
    }
    row = row_of(signed_in, notification)
    assert row.attrs["data-status"] == "SUCCESSFUL"
    assert row.find(".status").text == "Delivered"
    assert row.find(".attempts").text == "1 attempt"
    assert row.find(".ntfy-id").text == "sPs71M8A2T"
    assert "data-live" not in row.attrs


@pytest.mark.parametrize(
    ("message", "title"),
    [
        ("Crème brûlée à 15 h ; ça marche ?", "Rendez-vous à Zürich"),
        ("Family 👩‍👩‍👧‍👦, skin tone 👍🏽, flag 🇺🇦, rainbow 🏳️‍🌈", "Emoji 🎉"),
        ("שלום עולם\nمرحبا بالعالم\u200f", "עדכון חשוב"),  # noqa: RUF001 - Arabic on purpose
        ("日本語\r\nالعربية\r\nEnglish", "混合 mixed مختلط"),  # noqa: RUF001 - Arabic on purpose
    ],
)
def test_unicode_arrives_byte_exact(signed_in, ntfy, message, title):
    send(signed_in, message=message, title=title)
    run_worker()

    received = ntfy.requests[0].json
    # Line breaks arrive as typed (browsers send CRLF); everything else is untouched.
    assert received["message"].encode("utf-8") == message.replace("\r\n", "\n").encode("utf-8")
    assert received["title"].encode("utf-8") == title.encode("utf-8")


def test_server_errors_are_retried_until_success(signed_in, ntfy):
    ntfy.fail_first(2, status=500)
    notification = send(signed_in)
    run_worker()

    assert len(ntfy.requests) == 3
    result = result_of(notification)
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.attempts == 3
    assert [error.exception_class_path for error in result.errors] == [
        "messagecenter.ntfy.NtfyUnavailable"
    ] * 2
    assert row_of(signed_in, notification).find(".attempts").text == "3 attempts"


def test_server_errors_fail_the_task_after_the_last_attempt(signed_in, ntfy):
    ntfy.reply_always(Reply(status=500))
    notification = send(signed_in)
    run_worker()

    assert len(ntfy.requests) == 3  # max_attempts in tests/settings.py
    assert result_of(notification).status == TaskResultStatus.FAILED
    row = row_of(signed_in, notification)
    assert row.attrs["data-status"] == "FAILED"
    assert row.find(".attempts").text == "3 attempts"
    assert row.find(".error").text == "The ntfy server had a problem of its own (HTTP 500)."
    assert error_detail(row) == (
        "NtfyUnavailable: ntfy answered 500 Internal Server Error: internal server error."
    )
    assert row.find("button.retry").text == "Retry"


def test_rate_limiting_is_retried_after_retry_after(signed_in, ntfy):
    ntfy.reply_next(Reply(status=429, headers={"Retry-After": "30"}))
    notification = send(signed_in)

    run_worker()
    # The test backoff is 0 s, but ntfy asked for 30 s: the task waits (RetryLater).
    assert len(ntfy.requests) == 1
    row = DBTaskResult.objects.filter(task_path=SEND).get()
    assert row.available_after - row.attempts.get().stopped_at == dt.timedelta(seconds=30)

    pass_time_for_tasks(seconds=31)
    run_worker()
    assert len(ntfy.requests) == 2
    assert result_of(notification).status == TaskResultStatus.SUCCESSFUL


def test_timeout_is_retried(signed_in, ntfy, settings):
    settings.NTFY_TIMEOUT = 0.3
    ntfy.hang(3, times=1)
    notification = send(signed_in)
    run_worker()

    assert len(ntfy.requests) == 2  # the hung one, then the retry
    result = result_of(notification)
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.attempts == 2
    (error,) = result.errors
    assert error.exception_class_path == "messagecenter.ntfy.NtfyUnavailable"
    assert "did not answer within 0.3 s (ReadTimeout)" in error.traceback


def test_retries_wait_for_the_backoff(signed_in, ntfy, settings):
    options = settings.TASKS["default"]["OPTIONS"]
    settings.TASKS = {
        **settings.TASKS,
        "default": {
            **settings.TASKS["default"],
            # A minute: long enough that a slow machine still reads the page
            # and runs the worker again before the wait is over.
            "OPTIONS": {**options, "backoff_factor": 60},
        },
    }
    ntfy.fail_first(1, status=503)
    notification = send(signed_in)

    run_worker()
    assert len(ntfy.requests) == 1
    row = DBTaskResult.objects.filter(task_path=SEND).get()
    # Sends are limited per user (settings.TASKS): it waits without its slot.
    assert row.status == BLOCKED
    # After failed attempt 1 the task waits backoff_factor ** 1 = 60 seconds,
    # counted from the moment the attempt failed.
    failed_at = row.attempts.get(number=1).stopped_at
    assert row.available_after - failed_at == dt.timedelta(seconds=60)
    page_row = row_of(signed_in, notification)
    assert page_row.attrs["data-status"] == "SCHEDULED"
    assert page_row.find(".status").text == "Retrying"
    assert "Attempt 1 of 3 failed: The ntfy server had a problem of its own (HTTP 503)." in (
        " ".join(page_row.find(".state-line").text.split())
    )

    run_worker()  # too early: nothing to do
    assert len(ntfy.requests) == 1

    pass_time_for_tasks(seconds=61)
    run_worker()
    assert len(ntfy.requests) == 2
    assert result_of(notification).status == TaskResultStatus.SUCCESSFUL


def test_forbidden_fails_at_once_with_a_clear_error(signed_in, ntfy):
    ntfy.reply_always(
        Reply(status=403, body={"code": 40301, "http": 403, "error": "forbidden", "link": "x"})
    )
    notification = send(signed_in)
    run_worker()

    assert len(ntfy.requests) == 1  # no retry
    result = result_of(notification)
    assert result.status == TaskResultStatus.FAILED
    assert result.attempts == 1
    (error,) = result.errors
    assert error.exception_class_path == "dbtasks.exceptions.PermanentFailure"
    # The cause is kept in the traceback.
    assert "messagecenter.ntfy.NtfyRejected: ntfy answered 403 Forbidden" in error.traceback
    row = row_of(signed_in, notification)
    assert "refused the message" in row.find(".error").text
    assert error_detail(row) == "PermanentFailure: ntfy answered 403 Forbidden: forbidden."


@pytest.mark.parametrize("status", [400, 401, 404, 413])
def test_other_refusals_fail_at_once(signed_in, ntfy, status):
    ntfy.reply_always(Reply(status=status))
    notification = send(signed_in)
    run_worker()
    assert len(ntfy.requests) == 1
    assert result_of(notification).status == TaskResultStatus.FAILED


def test_deleted_notification_fails_at_once(signed_in, ntfy):
    notification = send(signed_in)
    Notification.objects.filter(pk=notification.pk).delete()
    run_worker()

    assert ntfy.requests == []
    row = DBTaskResult.objects.filter(task_path=SEND).get()
    assert row.status == TaskResultStatus.FAILED
    assert row.attempt_count == 1
    attempt = row.attempts.get()
    assert attempt.exception_class_path == "dbtasks.exceptions.PermanentFailure"
    assert f"Notification {notification.pk} no longer exists." in attempt.traceback


def test_retry_button_sends_a_new_attempt(signed_in, ntfy):
    ntfy.reply_always(Reply(status=403))
    notification = send(signed_in)
    run_worker()
    failed_id = result_of(notification).id

    ntfy.reset()  # ntfy accepts again (say the token was fixed)
    response = signed_in.post(f"/notifications/{notification.pk}/retry/", **HTMX)
    assert response.status_code == 200
    row = parse(response.content).find("li.notification")
    assert row.attrs["data-status"] == "READY"
    assert "data-live" in row.attrs  # followed again by the live channel
    assert not row.find_all(".attempts")

    notification.refresh_from_db()
    assert notification.task_result_id != failed_id
    # The old result is kept, untouched.
    assert send_notification.get_result(failed_id).status == TaskResultStatus.FAILED

    run_worker()
    assert len(ntfy.requests) == 1
    assert result_of(notification).status == TaskResultStatus.SUCCESSFUL
    assert row_of(signed_in, notification).attrs["data-status"] == "SUCCESSFUL"


def test_retry_without_javascript_redirects(signed_in, ntfy):
    ntfy.reply_always(Reply(status=404))
    notification = send(signed_in)
    run_worker()

    response = signed_in.post(f"/notifications/{notification.pk}/retry/")
    assert response.status_code == 302
    assert response["Location"] == "/"
    page = parse(signed_in.get("/").content)
    assert "Trying again" in page.find(".messages").text
    assert page.find(f"#notification-{notification.pk}").attrs["data-status"] == "READY"
    # A second click finds it no longer failed: no second task.
    signed_in.post(f"/notifications/{notification.pk}/retry/")
    assert DBTaskResult.objects.filter(task_path=SEND).count() == 2


def test_polling_follows_the_delivery(signed_in, ntfy):
    response = signed_in.post("/", {"message": "Hi", "priority": "3"}, **HTMX)
    notification = Notification.objects.get()
    row = parse(response.content).find("li.notification")
    query = {"seen": row.attrs["data-progress"]}
    assert query["seen"] == seen(notification)

    assert signed_in.get("/notifications/live/", query, **HTMX).status_code == 204
    run_worker()
    response = signed_in.get("/notifications/live/", query, **HTMX)
    assert response.status_code == 200
    row = parse(response.content).find("li.notification")
    assert row.attrs["data-status"] == "SUCCESSFUL"
    assert "data-live" not in row.attrs


def test_purged_result_shows_as_expired(signed_in, ntfy):
    notification = send(signed_in)
    run_worker()
    purged = purge_older(
        "finished",
        db="default",
        backend_name="default",
        before=timezone.now() + dt.timedelta(days=1),
    )
    assert purged == 2  # its send and its report

    notification.refresh_from_db()  # the notification itself survives the purge
    row = row_of(signed_in, notification)
    assert row.attrs["data-status"] == "EXPIRED"
    assert row.find(".status").text == "Expired"
    shown = seen(notification, "SUCCESSFUL", 1, report="SUCCESSFUL")
    response = signed_in.get("/notifications/live/", {"seen": shown})
    assert parse(response.content).find("li.notification").attrs["data-status"] == "EXPIRED"


def test_scheduled_notification_waits_for_its_time(signed_in, ntfy):
    at = timezone.now() + dt.timedelta(hours=1)
    notification = send(signed_in, deliver_at=at.strftime("%Y-%m-%dT%H:%M"))
    run_worker()
    assert ntfy.requests == []
    assert result_of(notification).status == TaskResultStatus.READY
    assert "Scheduled for" in row_of(signed_in, notification).text


def test_urgent_notifications_go_ahead_of_the_senders_waiting_ones(signed_in, ntfy):
    # The first two take alice's two slots (settings.TASKS) and go first;
    # among those waiting for a slot, urgent goes before high before low.
    send(signed_in, message="first")
    send(signed_in, message="second")
    send(signed_in, message="low", priority="2")
    send(signed_in, message="urgent", priority="5")
    send(signed_in, message="high", priority="4")
    run_worker()
    assert [request.json["message"] for request in ntfy.requests] == [
        "first",
        "second",
        "urgent",
        "high",
        "low",
    ]


# --- A slow or failing ntfy: every fault ends as the retry policy says ----------------
#
# tests/settings.py: max_attempts 3, backoff factor 0 (retries at once), so one
# --oneshot worker run takes a task through all its attempts.


def hang_past_the_timeout(ntfy, settings):
    settings.NTFY_TIMEOUT = 0.3
    ntfy.hang(5)
    return f"NtfyUnavailable: ntfy at {ntfy.url} did not answer within 0.3 s (ReadTimeout)."


def rate_limit(ntfy, settings):
    ntfy.reply_always(Reply(status=429, headers={"Retry-After": "2"}))
    return "RetryLater: ntfy answered 429 Too Many Requests: too many requests (Retry-After: 2)."


def reset_the_connection(ntfy, settings):
    ntfy.reset_connections()
    return (
        f"NtfyUnavailable: Cannot reach ntfy at {ntfy.url}: [Errno 104] Connection reset by peer."
    )


@pytest.mark.parametrize(
    "fault",
    [hang_past_the_timeout, reset_the_connection],
    ids=["hang", "reset"],
)
def test_a_fault_on_every_attempt_fails_the_task_with_the_error_on_the_row(
    signed_in, ntfy, settings, fault
):
    error_text = fault(ntfy, settings)
    notification = send(signed_in)
    run_worker()

    assert len(ntfy.requests) == 3  # max_attempts: each fault is retried, then no more
    result = result_of(notification)
    assert result.status == TaskResultStatus.FAILED
    assert [error.exception_class_path for error in result.errors] == [
        "messagecenter.ntfy.NtfyUnavailable"
    ] * 3
    row = row_of(signed_in, notification)
    assert row.attrs["data-status"] == "FAILED"
    assert row.find(".attempts").text == "3 attempts"
    assert error_detail(row) == error_text
    assert row.find(".error").text.startswith("The ntfy server")
    assert row.find("button.retry").text == "Retry"


def test_a_connection_reset_is_retried_until_success(signed_in, ntfy):
    ntfy.reset_connections(times=1)
    notification = send(signed_in)
    run_worker()

    assert len(ntfy.requests) == 2
    result = result_of(notification)
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.attempts == 2
    (error,) = result.errors
    assert error.exception_class_path == "messagecenter.ntfy.NtfyUnavailable"
    assert "Connection reset by peer" in error.traceback
    assert row_of(signed_in, notification).find(".attempts").text == "2 attempts"


def test_rate_limiting_follows_the_retry_policy_and_shows_on_the_row(signed_in, ntfy, settings):
    """429 with Retry-After: retried per the queue's policy, the error shown while it waits.

    The task raises dbtasks' RetryLater with ntfy's Retry-After (2 s), so each
    wait is the longer of that and the backoff (backoff_factor ** n: a minute,
    an hour: long enough that a slow machine reads the page before the wait is
    over); the rows' waits are moved past both before each run. The attempts
    still count.
    """
    options = settings.TASKS["default"]["OPTIONS"]
    settings.TASKS = {
        **settings.TASKS,
        "default": {**settings.TASKS["default"], "OPTIONS": {**options, "backoff_factor": 60}},
    }
    error_text = rate_limit(ntfy, settings)
    notification = send(signed_in)

    for attempt in (1, 2):
        run_worker()
        assert len(ntfy.requests) == attempt
        row = row_of(signed_in, notification)
        assert row.attrs["data-status"] == "SCHEDULED"
        assert "data-live" in row.attrs  # still followed: it is not over
        assert (
            f"Attempt {attempt} of 3 failed: The ntfy server asked to slow down (HTTP 429)."
            in " ".join(row.find(".state-line").text.split())
        )
        # Past backoff_factor ** attempt (60 s, 3,600 s) and Retry-After (2 s).
        pass_time_for_tasks(seconds=3_601)

    run_worker()
    assert len(ntfy.requests) == 3
    result = result_of(notification)
    assert result.status == TaskResultStatus.FAILED
    assert result.attempts == 3
    assert error_detail(row_of(signed_in, notification)) == error_text
