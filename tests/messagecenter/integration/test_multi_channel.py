"""One message to several channels: a workflow group of sends, then a delivery report.

Through the page as a signed-in user, with a worker delivering to stand-in
ntfy servers: one healthy (it takes any topic, so each channel is told apart
by its topic) and one that refuses every message (403), for "Phone".
"""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from dbtasks.models import DBTaskResult
from dbtasks.workflows.models import DBWorkflow
from dbtasks.workflows.models import DBWorkflowMember
from messagecenter.channels import Channel
from messagecenter.forms import MAX_CHANNELS
from messagecenter.models import Destination
from messagecenter.models import Notification
from messagecenter.results import deliveries_for
from tests.conftest import run_worker
from tests.html import parse
from tests.messagecenter.conftest import HTMX
from tests.ntfy_server import NtfyStandIn
from tests.ntfy_server import Reply

pytestmark = pytest.mark.django_db(transaction=True)

SEND = "messagecenter.tasks.send_notification"
REPORT = "messagecenter.tasks.report_delivery"


@pytest.fixture
def refusing():
    """An ntfy server that refuses every message: the topic may not be written to."""
    with NtfyStandIn() as server:
        server.reply_always(Reply(status=403))
        yield server


@pytest.fixture
def channels(alice, ntfy, refusing):
    return [
        Channel.objects.create(owner=alice, name="Laptop", server_url=ntfy.url, topic="laptop"),
        Channel.objects.create(owner=alice, name="Pager", server_url=ntfy.url, topic="pager"),
        Channel.objects.create(owner=alice, name="Phone", server_url=refusing.url, topic="phone"),
    ]


def post(client, channels, **fields):
    data = {"message": "Disk full", "priority": "3", "channels": [c.pk for c in channels]}
    return client.post("/", data | fields)


def row(client, notification):
    return parse(client.get("/").content).find(f"#notification-{notification.pk}")


def test_the_group_is_written_with_the_notification(signed_in, channels):
    assert post(signed_in, channels).status_code == 302
    notification = Notification.objects.get()
    destinations = list(notification.destinations.all())
    assert [d.channel_name for d in destinations] == ["Laptop", "Pager", "Phone"]

    (workflow,) = DBWorkflow.objects.all()
    members = list(DBWorkflowMember.objects.filter(workflow=workflow).order_by("position"))
    sends, report = members[:-1], members[-1]
    assert [str(m.result_id) for m in sends] == [d.task_result_id for d in destinations]
    assert str(report.result_id) == notification.task_result_id
    assert report.waits_on == [m.result_id for m in sends]
    assert report.result.task_path == REPORT
    assert report.result.status == "BLOCKED"  # runs once every send has finished
    assert [m.result.args for m in sends] == [[notification.pk, c.pk] for c in channels]


def test_nothing_is_written_when_the_group_cannot_be(signed_in, channels, monkeypatch):
    def refuse(*args, **kwargs):
        raise RuntimeError("the database went away")

    monkeypatch.setattr(Destination.objects, "bulk_update", refuse)
    with pytest.raises(RuntimeError):
        post(signed_in, channels)
    assert not Notification.objects.exists()
    assert not Destination.objects.exists()
    assert not DBTaskResult.objects.exists()
    assert not DBWorkflow.objects.exists()


def test_each_channel_gets_it_and_the_report_says_which_did_not(
    signed_in, channels, ntfy, refusing
):
    post(signed_in, channels)
    run_worker()  # the sends; the report is released as the last one ends
    run_worker()  # the report, if the first run ended before it was due

    assert sorted(r.published["topic"] for r in ntfy.requests) == ["laptop", "pager"]
    assert [r.published["topic"] for r in refusing.requests] == ["phone"]
    notification = Notification.objects.get()
    assert notification.report == (
        "Delivered to 2 of 3 channels; Phone failed: The ntfy server refused the message: "
        "this topic may not be written to (HTTP 403)."
    )
    outcomes = {d.channel_name: (d.outcome, d.error) for d in notification.destinations.all()}
    assert outcomes["Laptop"] == outcomes["Pager"] == ("delivered", "")
    assert outcomes["Phone"][0] == "failed"

    shown = row(signed_in, notification)
    assert shown.attrs["data-status"] == "PARTIAL"
    assert "data-live" not in shown.attrs  # every channel and the report have finished
    states = {
        s.find(".channel-state__name").text: s.attrs["data-status"]
        for s in shown.find_all("li.channel-state")
    }
    assert states == {"Laptop": "SUCCESSFUL", "Pager": "SUCCESSFUL", "Phone": "FAILED"}
    assert shown.find("p.report").text == notification.report


def test_a_row_read_finished_always_has_its_report(signed_in, channels, ntfy, refusing):
    # The page reads the notification, then its results: the report may write
    # its line and finish in between. A row shown finished without its line
    # would never be polled again (CI saw it in the browser test).
    post(signed_in, channels)
    read_before_the_report = Notification.objects.get()
    run_worker()
    run_worker()

    shown = deliveries_for([read_before_the_report])[read_before_the_report.pk]
    assert read_before_the_report.report == ""
    assert shown.is_finished
    assert shown.report_text == Notification.objects.get().report
    assert shown.report_text.startswith("Delivered to 2 of 3 channels; Phone failed")


def test_retry_sends_again_only_to_the_channels_that_do_not_have_it(
    signed_in, channels, ntfy, refusing
):
    post(signed_in, channels)
    run_worker()
    run_worker()
    notification = Notification.objects.get()
    first_report = notification.task_result_id
    refusing.reply_always(Reply(status=200))  # Phone's server is fixed

    response = signed_in.post(f"/notifications/{notification.pk}/retry/", **HTMX)
    assert response.status_code == 200
    assert parse(response.content).find("li.notification").attrs["data-status"] == "READY"
    run_worker()
    run_worker()

    notification.refresh_from_db()
    assert notification.task_result_id != first_report
    assert notification.report == "Delivered to all 3 channels."
    assert sorted(r.published["topic"] for r in ntfy.requests) == ["laptop", "pager"]
    assert [r.published["topic"] for r in refusing.requests] == ["phone", "phone"]
    assert DBTaskResult.objects.filter(task_path=SEND).count() == 4
    # Nothing left to retry: a second click sends nothing.
    signed_in.post(f"/notifications/{notification.pk}/retry/")
    assert DBTaskResult.objects.filter(task_path=SEND).count() == 4

    # The history keeps every send of every group: Phone's refusal too.
    response = signed_in.get(f"/notifications/{notification.pk}/attempts/", **HTMX)
    lines = [" ".join(li.text.split()) for li in parse(response.content).find_all("li")]
    assert [line.split(",")[0] for line in lines] == [
        "Laptop: attempt 1",
        "Pager: attempt 1",
        "Phone: attempt 1",
        "Phone: retry 1",
    ]
    assert "ntfy answered 403" in lines[2]
    assert lines[3].startswith("Phone: retry 1, attempt 1, ")
    assert lines[3].endswith("delivered.")


def test_cancel_stops_every_channel_and_the_report_says_so(signed_in, channels, ntfy):
    tomorrow = timezone.localtime() + dt.timedelta(days=1)
    post(signed_in, channels[:2], deliver_at=tomorrow.strftime("%Y-%m-%dT%H:%M"))
    notification = Notification.objects.get()
    assert row(signed_in, notification).attrs["data-status"] == "SCHEDULED"

    response = signed_in.post(f"/notifications/{notification.pk}/cancel/", **HTMX)
    assert parse(response.content).find("li.notification").attrs["data-status"] == "CANCELLED"
    run_worker()  # the report, released by the cancels

    notification.refresh_from_db()
    assert notification.report == "Delivered to 0 of 2 channels; Laptop cancelled; Pager cancelled."
    assert ntfy.requests == []
    assert row(signed_in, notification).find("p.report").text == notification.report


def test_only_ones_own_channels_and_not_too_many(signed_in, alice, bob, channels):
    bobs = Channel.objects.create(owner=bob, name="Bob's", topic="bobs-topic")
    refused = post(signed_in, [channels[0], bobs])
    assert refused.status_code == 422
    assert "is not one of the available choices" in refused.content.decode()

    many = [
        Channel.objects.create(owner=alice, name=f"Extra {n}", topic=f"extra-{n}")
        for n in range(MAX_CHANNELS)
    ]
    too_many = post(signed_in, [*channels, *many])
    assert too_many.status_code == 422
    assert f"Choose at most {MAX_CHANNELS} channels." in too_many.content.decode()
    assert not Notification.objects.exists()
    assert not DBTaskResult.objects.exists()
