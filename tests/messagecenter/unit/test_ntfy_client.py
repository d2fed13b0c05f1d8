"""The ntfy client against the stand-in server: what it sends, and how it fails."""

from __future__ import annotations

import datetime
from email.utils import format_datetime

import pytest
from django.core.exceptions import ImproperlyConfigured

from messagecenter import ntfy as client
from tests.live import free_port
from tests.ntfy_server import Reply


def publish(**fields):
    return client.publish(client.Message(**fields))


def closed_port_url() -> str:
    """A loopback URL where nothing listens (connection refused)."""
    return f"http://127.0.0.1:{free_port()}/topic"


@pytest.mark.parametrize(
    ("url", "server", "topic"),
    [
        ("https://ntfy.sh/alerts", "https://ntfy.sh/", "alerts"),
        ("https://ntfy.sh/alerts/", "https://ntfy.sh/", "alerts"),
        ("http://127.0.0.1:8090/my_topic-2", "http://127.0.0.1:8090/", "my_topic-2"),
        ("https://example.com/ntfy/alerts", "https://example.com/ntfy/", "alerts"),
        ("https://user:pw@example.com/alerts", "https://user:pw@example.com/", "alerts"),
    ],
)
def test_split_topic_url(url, server, topic):
    assert client.split_topic_url(url) == (server, topic)


@pytest.mark.parametrize(
    "url",
    [
        "ntfy.sh/alerts",
        "ftp://ntfy.sh/alerts",
        "https://ntfy.sh/",
        "https://ntfy.sh/a b",
        "https:///x",
    ],
)
def test_split_topic_url_refuses_what_is_not_a_topic_url(url):
    with pytest.raises(ImproperlyConfigured, match="is not an ntfy topic URL"):
        client.split_topic_url(url)


def test_empty_url_says_what_to_set(settings):
    settings.NTFY_URL = ""
    with pytest.raises(ImproperlyConfigured) as excinfo:
        client.publish(client.Message(message="hi"))
    assert str(excinfo.value) == (
        "NTFY_URL is empty. Set NTFY_URL to your ntfy topic URL, e.g. https://ntfy.sh/<topic>."
    )


def test_publish_sends_json_to_the_server_root(ntfy, settings):
    settings.NTFY_TOKEN = ""
    answer = publish(title="Build", message="All green", priority=4, tags=("tada", "ci"))

    (request,) = ntfy.requests
    assert request.method == "POST"
    assert request.path == "/"
    assert request.headers["content-type"] == "application/json"
    assert "authorization" not in request.headers
    assert request.json == {
        "topic": "test-topic",
        "message": "All green",
        "title": "Build",
        "priority": 4,
        "tags": ["tada", "ci"],
    }
    assert set(answer) == {"id", "time", "topic"}
    assert answer["topic"] == "test-topic"
    assert len(answer["id"]) == 12


def test_publish_leaves_out_empty_title_and_tags(ntfy):
    publish(message="Just a message")
    assert ntfy.requests[0].json == {
        "topic": "test-topic",
        "message": "Just a message",
        "priority": 3,
    }


def test_publish_sends_the_token_as_bearer(ntfy, settings):
    settings.NTFY_TOKEN = "tk_secret123"
    publish(message="hi")
    assert ntfy.requests[0].headers["authorization"] == "Bearer tk_secret123"


def test_publish_returns_ntfys_id(ntfy):
    ntfy.reply_always(Reply(body={"id": "xE73Iyuabi", "time": 1700000000, "topic": "test-topic"}))
    assert publish(message="hi") == {"id": "xE73Iyuabi", "time": 1700000000, "topic": "test-topic"}


@pytest.mark.parametrize(
    "text",
    [
        "Crème brûlée, naïve façade, Ærøskøbing",
        "👩‍👩‍👧‍👦 👍🏽 🇺🇦 🏳️‍🌈",
        "שלום עולם \u200f مرحبا",
        "line one\nline two\ttabbed",
    ],
)
def test_unicode_arrives_byte_exact(ntfy, text):
    publish(message=text, title=text.splitlines()[0], tags=(text[:8],))
    received = ntfy.requests[0].json
    assert received["message"].encode("utf-8") == text.encode("utf-8")
    assert received["title"].encode("utf-8") == text.splitlines()[0].encode("utf-8")
    assert received["tags"] == [text[:8]]


@pytest.mark.parametrize("status", [400, 401, 403, 404, 413])
def test_refusals_that_retrying_cannot_fix_are_ntfy_rejected(ntfy, status):
    ntfy.reply_always(Reply(status=status))
    with pytest.raises(client.NtfyRejected) as excinfo:
        publish(message="hi")
    assert excinfo.value.status_code == status
    assert str(excinfo.value).startswith(f"ntfy answered {status} ")


def test_rejection_quotes_ntfys_error(ntfy):
    ntfy.reply_always(
        Reply(status=403, body={"code": 40301, "http": 403, "error": "forbidden", "link": "x"})
    )
    with pytest.raises(client.NtfyRejected, match=r"^ntfy answered 403 Forbidden: forbidden\.$"):
        publish(message="hi")


@pytest.mark.parametrize("status", [500, 502, 503, 504, 429])
def test_server_trouble_is_ntfy_unavailable(ntfy, status):
    ntfy.reply_always(Reply(status=status))
    with pytest.raises(client.NtfyUnavailable) as excinfo:
        publish(message="hi")
    assert excinfo.value.status_code == status


def test_rate_limit_reports_retry_after(ntfy):
    ntfy.reply_always(Reply(status=429, headers={"Retry-After": "30"}))
    with pytest.raises(client.NtfyUnavailable) as excinfo:
        publish(message="hi")
    assert excinfo.value.retry_after == "30"
    assert str(excinfo.value) == (
        "ntfy answered 429 Too Many Requests: too many requests (Retry-After: 30)."
    )


def test_timeout_is_ntfy_unavailable(ntfy, settings):
    settings.NTFY_TIMEOUT = 0.2
    ntfy.hang(2)
    with pytest.raises(client.NtfyUnavailable) as excinfo:
        publish(message="hi")
    assert str(excinfo.value) == (f"ntfy at {ntfy.url} did not answer within 0.2 s (ReadTimeout).")
    assert len(ntfy.requests) == 1


def test_unreachable_server_is_ntfy_unavailable(settings):
    settings.NTFY_URL = closed_port_url()
    with pytest.raises(client.NtfyUnavailable, match=r"^Cannot reach ntfy at http://127\.0\.0\.1:"):
        publish(message="hi")


def test_success_without_a_message_id_is_rejected(ntfy):
    ntfy.reply_always(Reply(status=200, body=b"<html>not ntfy</html>"))
    with pytest.raises(client.NtfyRejected, match="without a message id"):
        publish(message="hi")


def test_redirect_is_rejected_with_the_address(ntfy):
    ntfy.reply_always(Reply(status=301, headers={"Location": "https://ntfy.example/t"}, body=b""))
    with pytest.raises(client.NtfyRejected, match=r"redirecting to https://ntfy\.example/t"):
        publish(message="hi")


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("30", 30.0), ("0", 0.0), ("99999", 3600.0), ("soon", None), (None, None)],
)
def test_retry_after_as_seconds(header, seconds):
    error = client.NtfyUnavailable("busy", status_code=429, retry_after=header)

    assert error.retry_after_seconds == seconds


def test_retry_after_as_an_http_date():
    when = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=120)
    error = client.NtfyUnavailable("busy", retry_after=format_datetime(when, usegmt=True))

    assert error.retry_after_seconds is not None
    assert 100 <= error.retry_after_seconds <= 120
