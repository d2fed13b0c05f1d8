"""The pages and endpoints through Django's test client, with htmx and without JavaScript."""

from __future__ import annotations

import datetime as dt

import pytest
from django.contrib.staticfiles import finders
from django.tasks import TaskResultStatus
from django.utils import timezone

from dbtasks.models import DBTaskResult
from messagecenter.models import Notification
from messagecenter.sending import send
from messagecenter.tasks import send_notification
from messagecenter.views import PAGE_SIZE
from tests.deliveries import seen
from tests.deliveries import send_id
from tests.html import parse
from tests.messagecenter.conftest import HTMX
from tests.messagecenter.conftest import PASSWORD

SEND = "messagecenter.tasks.send_notification"  # a notification's sends, not its report


def make_notification(owner, **fields):
    """A notification with its delivery queued, as the page makes them."""
    notification = Notification.objects.create(owner=owner, **{"message": "Hi", **fields})
    send(notification)
    return notification


# --- Sign-in -------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("url", ["/", "/notifications/1/attempts/", "/notifications/1/retry/"])
def test_every_page_needs_sign_in(client, url):
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"] == f"/accounts/login/?next={url}"


@pytest.mark.django_db
def test_the_live_channel_needs_its_token_not_a_session(client, alice):
    assert client.get("/notifications/live/").status_code == 403
    client.force_login(alice)  # a session alone is not enough
    assert client.get("/notifications/live/").status_code == 403


@pytest.mark.django_db
def test_sign_in_page(client):
    response = client.get("/accounts/login/")
    assert response.status_code == 200
    page = parse(response.content)
    assert page.find("#id_username").attrs["name"] == "username"
    assert page.find("#id_password").attrs["type"] == "password"
    assert [b.text for b in page.find_all("button")] == ["Sign in"]


def test_sign_in_then_out(client, alice):
    response = client.post("/accounts/login/", {"username": "alice", "password": PASSWORD})
    assert response.status_code == 302
    assert response["Location"] == "/"

    page = parse(client.get("/").content)
    assert "alice" in page.find(".account__name").text
    logout = page.find("form.account__logout")
    assert logout.attrs["method"] == "post"
    assert logout.attrs["action"] == "/accounts/logout/"
    assert logout.find("button").text == "Sign out"

    response = client.post("/accounts/logout/")
    assert response.status_code == 302
    assert client.get("/").status_code == 302


def test_wrong_password_says_so(client, alice):
    response = client.post("/accounts/login/", {"username": "alice", "password": "nope"})
    assert response.status_code == 200
    assert "Please enter a correct username and password" in response.content.decode()


# --- The page ------------------------------------------------------------------


def test_index_shows_the_form_and_an_empty_list(signed_in):
    response = signed_in.get("/")
    assert response.status_code == 200
    page = parse(response.content)
    assert page.find("#notification-form").find("#id_message").tag == "textarea"
    assert page.find("#notifications").find_all("li.notification") == []
    assert "Nothing sent yet" in page.find(".empty-state").text


def test_index_has_a_content_security_policy_and_no_inline_script(signed_in):
    response = signed_in.get("/")
    csp = response["Content-Security-Policy"]
    assert "script-src 'self'" in csp
    assert "style-src 'self'" in csp
    page = parse(response.content)
    scripts = page.find_all("script")
    assert [script.attrs["src"] for script in scripts] == [
        "/static/messagecenter/htmx.min.js",
        "/static/messagecenter/app.js",
    ]
    assert all(script.text == "" for script in scripts)
    assert (page.find("body").attrs["hx-headers"] or "").startswith('{"X-CSRFToken": "')
    config = next(m for m in page.find_all("meta") if m.attrs.get("name") == "htmx-config")
    assert '"includeIndicatorStyles": false' in (config.attrs["content"] or "")


def test_static_files_are_found():
    for name in ("htmx.min.js", "app.js", "app.css"):
        assert finders.find(f"messagecenter/{name}"), name


def test_list_is_newest_first_and_paginated(signed_in, alice):
    start = timezone.now() - dt.timedelta(hours=1)
    for number in range(PAGE_SIZE + 5):
        make_notification(
            alice, message=f"message {number}", created_at=start + dt.timedelta(minutes=number)
        )

    first = parse(signed_in.get("/").content)
    messages = [
        row.find(".notification__message").text for row in first.find_all("li.notification")
    ]
    assert messages == [f"message {number}" for number in range(24, 4, -1)]
    assert "Page 1 of 2" in first.find(".pagination").text

    second = parse(signed_in.get("/?page=2").content)
    messages = [
        row.find(".notification__message").text for row in second.find_all("li.notification")
    ]
    assert messages == [f"message {number}" for number in range(4, -1, -1)]


def test_out_of_range_page_shows_the_last_page(signed_in, alice):
    make_notification(alice)
    page = parse(signed_in.get("/?page=99").content)
    assert len(page.find_all("li.notification")) == 1


# --- Sending -------------------------------------------------------------------

VALID = {"message": "Déploiement terminé ✅", "title": "CI", "priority": "3"}


def test_send_without_javascript_redirects_then_shows_the_row(signed_in, alice):
    response = signed_in.post("/", VALID)
    assert response.status_code == 302
    assert response["Location"] == "/"

    notification = Notification.objects.get()
    assert notification.owner == alice
    assert notification.message == "Déploiement terminé ✅"
    assert notification.task_result_id

    page = parse(signed_in.get("/").content)
    assert "Notification queued" in page.find(".messages").text
    row = page.find(f"#notification-{notification.pk}")
    assert row.attrs["data-status"] == "READY"
    assert row.find(".status").text == "Queued"


def test_send_enqueues_the_task_in_the_same_transaction(signed_in):
    signed_in.post("/", VALID)
    notification = Notification.objects.get()
    result = send_notification.get_result(send_id(notification))
    assert result.status == TaskResultStatus.READY
    assert result.args == [notification.pk, notification.channel_id]
    assert notification.channel is not None
    assert notification.channel.owner == notification.owner
    assert result.task.priority == 0
    assert result.task.run_after is None


def test_nothing_is_saved_when_enqueue_fails(signed_in, monkeypatch):
    def broken_enqueue(*args, **kwargs):
        raise RuntimeError("queue down")

    monkeypatch.setattr("dbtasks.backend.DatabaseBackend.enqueue", broken_enqueue)
    with pytest.raises(RuntimeError, match="queue down"):
        signed_in.post("/", VALID)
    assert not Notification.objects.exists()


@pytest.mark.parametrize(("priority", "task_priority"), [("1", 0), ("3", 0), ("4", 10), ("5", 20)])
def test_urgent_and_high_raise_the_task_priority(signed_in, priority, task_priority):
    signed_in.post("/", {**VALID, "priority": priority})
    row = DBTaskResult.objects.filter(task_path=SEND).get()
    assert row.priority == task_priority


def test_delivery_time_becomes_run_after(signed_in):
    at = (timezone.now() + dt.timedelta(hours=3)).replace(second=0, microsecond=0)
    signed_in.post("/", {**VALID, "deliver_at": at.strftime("%Y-%m-%dT%H:%M")})
    notification = Notification.objects.get()
    assert notification.deliver_at == at
    result = send_notification.get_result(send_id(notification))
    assert result.task.run_after == at
    assert DBTaskResult.objects.filter(task_path=SEND).get().available_after == at


def test_send_with_htmx_returns_a_fresh_form_and_the_new_row_on_top(signed_in):
    response = signed_in.post("/", VALID, **HTMX)
    assert response.status_code == 200
    notification = Notification.objects.get()
    fragment = parse(response.content)

    form = fragment.find("#notification-form")
    assert form.find("#id_message").text == ""
    assert not form.find_all(".errorlist")

    wrapper = next(e for e in fragment.children if e.attrs.get("hx-swap-oob"))
    assert wrapper.attrs["hx-swap-oob"] == "afterbegin:#notifications"
    row = wrapper.find("li.notification")
    assert row.attrs["id"] == f"notification-{notification.pk}"
    assert row.attrs["data-status"] == "READY"
    assert row.attrs["data-progress"] == seen(notification)
    assert "Queued “CI”." in fragment.find("#form-status").text
    count = fragment.find("#notification-count")
    assert (count.attrs["hx-swap-oob"], count.text) == ("true", "1 in total")


def test_invalid_send_with_htmx_returns_the_form_with_errors(signed_in):
    response = signed_in.post("/", {"message": "", "priority": "3"}, **HTMX)
    assert response.status_code == 422
    fragment = parse(response.content)
    form = fragment.find("#notification-form")
    assert form.find(".field--message").find("ul.errorlist").text == "This field is required."
    assert not fragment.find_all("li.notification")
    assert not Notification.objects.exists()
    assert not DBTaskResult.objects.exists()


def test_invalid_send_without_javascript_shows_the_page_with_errors(signed_in, alice):
    make_notification(alice, message="earlier one")
    response = signed_in.post("/", {"message": "x" * 5000, "title": "a\nb", "priority": "3"})
    assert response.status_code == 422
    page = parse(response.content)
    errors = [e.text for e in page.find("#notification-form").find_all("ul.errorlist")]
    assert errors == [
        "This message is 5000 bytes in UTF-8; ntfy accepts at most 4096. Shorten it by 904 bytes.",
        "The title must be a single line, without line breaks, tabs or control characters.",
    ]
    # The rest of the page is there too.
    assert len(page.find_all("li.notification")) == 1
    assert Notification.objects.count() == 1


def test_index_refuses_other_methods(signed_in):
    assert signed_in.delete("/").status_code == 405


def test_index_varies_on_hx_request(signed_in):
    assert "HX-Request" in signed_in.get("/")["Vary"]


# --- Polling -------------------------------------------------------------------


def test_poll_answers_204_while_nothing_changed(signed_in, alice):
    notifications = [make_notification(alice) for _ in range(3)]
    # The third waits for one of alice's two slots (settings.TASKS): BLOCKED.
    sends = DBTaskResult.objects.filter(task_path=SEND).order_by("pk")
    states = sends.values_list("status", flat=True)
    response = signed_in.get(
        "/notifications/live/",
        {"seen": [seen(n, state) for n, state in zip(notifications, states, strict=True)]},
        **HTMX,
    )
    assert response.status_code == 204
    assert response.content == b""
    assert response["Poll-After"] == "1"  # queued: worth asking again soon


@pytest.mark.parametrize("shown", [("RUNNING", 0), ("READY", 1), ("SCHEDULED", 0)])
def test_poll_answers_only_the_rows_that_changed(signed_in, alice, shown):
    changed, unchanged = make_notification(alice), make_notification(alice)
    query = {"seen": [seen(changed, *shown), seen(unchanged)]}
    response = signed_in.get("/notifications/live/", query, **HTMX)
    assert response.status_code == 200
    (row,) = parse(response.content).find_all("li.notification")
    assert row.attrs["id"] == f"notification-{changed.pk}"
    assert row.attrs["data-status"] == "READY"
    assert row.attrs["data-progress"] == seen(changed)


def test_poll_of_a_purged_result_shows_expired(signed_in, alice):
    notification = make_notification(alice)
    DBTaskResult.objects.all().delete()  # what the retention policy does
    response = signed_in.get("/notifications/live/", {"seen": seen(notification)})
    assert response.status_code == 200
    row = parse(response.content).find("li.notification")
    assert row.attrs["data-status"] == "EXPIRED"
    assert row.find(".status").text == "Expired"
    assert "data-live" not in row.attrs  # finished: the page stops asking
    assert "Poll-After" not in response


def test_poll_waits_for_the_earliest_scheduled_row(signed_in, alice):
    soon = timezone.now() + dt.timedelta(minutes=5)
    first = Notification.objects.create(owner=alice, message="soon")
    send(first, run_after=soon)
    later = Notification.objects.create(owner=alice, message="later")
    send(later, run_after=soon + dt.timedelta(minutes=5))
    page = parse(signed_in.get("/").content)
    waits = [float(page.find("#notifications").attrs["data-poll-after"] or "nan")]
    query = {"seen": [seen(first, "SCHEDULED"), seen(later, "SCHEDULED")]}
    response = signed_in.get("/notifications/live/", query, **HTMX)
    assert response.status_code == 204
    waits.append(float(response["Poll-After"]))
    for wait in waits:
        assert 280 < wait <= 300


def test_list_shows_a_purged_result_as_expired(signed_in, alice):
    notification = make_notification(alice)
    DBTaskResult.objects.all().delete()
    row = parse(signed_in.get("/").content).find(f"#notification-{notification.pk}")
    assert row.attrs["data-status"] == "EXPIRED"


def test_poll_ignores_unknown_and_malformed_rows(signed_in):
    query = {"seen": ["999999.1:READY:0", "abc", "", "12", ".", "1." + "x" * 500]}
    response = signed_in.get("/notifications/live/", query)
    assert response.status_code == 204
    assert "Poll-After" not in response


def test_poll_refuses_post(signed_in):
    assert signed_in.post("/notifications/live/").status_code == 405


def test_attempt_history_lists_each_attempt(signed_in, alice):
    notification = make_notification(alice)
    response = signed_in.get(f"/notifications/{notification.pk}/attempts/")
    assert response.status_code == 200
    assert "No attempt has finished yet." in response.content.decode()


# --- Retry (of rows that are not failed; failed ones in test_delivery.py) -------


def test_retry_of_a_notification_that_has_not_failed_does_nothing(signed_in, alice):
    notification = make_notification(alice)
    before = notification.task_result_id

    response = signed_in.post(f"/notifications/{notification.pk}/retry/", **HTMX)
    assert response.status_code == 200
    assert parse(response.content).find("li.notification").attrs["data-status"] == "READY"

    response = signed_in.post(f"/notifications/{notification.pk}/retry/", follow=True)
    assert "has not failed, so it was not retried" in response.content.decode()

    notification.refresh_from_db()
    assert notification.task_result_id == before
    assert DBTaskResult.objects.filter(task_path=SEND).count() == 1


def test_retry_needs_post(signed_in, alice):
    notification = make_notification(alice)
    assert signed_in.get(f"/notifications/{notification.pk}/retry/").status_code == 405
