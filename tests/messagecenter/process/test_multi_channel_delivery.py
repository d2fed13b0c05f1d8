"""A message to three channels, delivered by a real worker process to the stand-in ntfy.

Two topics on one server, one on a server that refuses (403): each topic
receives the message once, the refused one is not retried, and the
delivery report the worker records says so.
"""

from __future__ import annotations

import pytest
from django.test import Client

from messagecenter.channels import Channel
from messagecenter.models import Notification
from tests.live import STARTUP_TIMEOUT
from tests.live import wait_until
from tests.ntfy_server import NtfyStandIn
from tests.ntfy_server import Reply

pytestmark = pytest.mark.process


def test_a_worker_delivers_to_each_channels_topic_and_reports(start_worker, ntfy, alice):
    with NtfyStandIn() as refusing:
        refusing.reply_always(Reply(status=403))
        channels = [
            Channel.objects.create(owner=alice, name="Laptop", server_url=ntfy.url, topic="laptop"),
            Channel.objects.create(owner=alice, name="Pager", server_url=ntfy.url, topic="pager"),
            Channel.objects.create(
                owner=alice, name="Phone", server_url=refusing.url, topic="phone"
            ),
        ]
        client = Client()
        client.force_login(alice)
        data = {"message": "Disk full", "priority": "4", "channels": [c.pk for c in channels]}
        assert client.post("/", data).status_code == 302
        start_worker("--threads", "3")

        notification = Notification.objects.get()
        wait_until(
            lambda: Notification.objects.filter(pk=notification.pk).exclude(report="").exists(),
            timeout=STARTUP_TIMEOUT,
            what="the worker to record the delivery report",
        )
        notification.refresh_from_db()
        assert notification.report.startswith("Delivered to 2 of 3 channels; Phone failed: ")
        assert sorted(r.published["topic"] for r in ntfy.requests) == ["laptop", "pager"]
        assert [r.published["topic"] for r in refusing.requests] == ["phone"]  # not retried
        assert {r.published["message"] for r in ntfy.requests} == {"Disk full"}
