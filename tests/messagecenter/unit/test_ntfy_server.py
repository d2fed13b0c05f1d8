"""The stand-in ntfy server itself: it records, answers as told, and runs as a process."""

from __future__ import annotations

import os
import sys

import httpx
import pytest

from tests.live import Service
from tests.live import free_port
from tests.live import wait_for_http
from tests.ntfy_server import NtfyStandIn
from tests.ntfy_server import Reply


@pytest.fixture
def stand_in():
    with NtfyStandIn() as server:
        yield server


def test_listens_on_loopback(stand_in):
    assert stand_in.url == f"http://127.0.0.1:{stand_in.port}/"
    assert stand_in.topic_url == f"http://127.0.0.1:{stand_in.port}/test-topic"


def test_answers_a_json_publish_like_ntfy(stand_in):
    response = httpx.post(stand_in.url, json={"topic": "t", "message": "hé 👋", "priority": 5})
    assert response.status_code == 200
    answer = response.json()
    assert answer["event"] == "message"
    assert answer["topic"] == "t"
    assert answer["message"] == "hé 👋"
    assert answer["priority"] == 5
    assert len(answer["id"]) == 12
    (request,) = stand_in.requests
    assert request.method == "POST"
    assert request.published == {"topic": "t", "message": "hé 👋", "priority": 5}


def test_understands_a_plain_publish_with_headers(stand_in):
    httpx.post(
        f"{stand_in.url}alerts", content="Disk full", headers={"X-Title": "db1", "X-Tags": "a,b"}
    )
    assert stand_in.requests[0].published == {
        "topic": "alerts",
        "message": "Disk full",
        "title": "db1",
        "tags": ["a", "b"],
    }


def test_json_publish_that_is_not_json_is_a_400(stand_in):
    response = httpx.post(stand_in.url, content=b"not json")
    assert response.status_code == 400
    assert len(stand_in.requests) == 1


def test_fail_first_then_succeed(stand_in):
    stand_in.fail_first(2, status=503)
    statuses = [httpx.post(stand_in.url, json={"topic": "t"}).status_code for _ in range(3)]
    assert statuses == [503, 503, 200]
    assert len(stand_in.requests) == 3


def test_reply_always_and_reply_next(stand_in):
    stand_in.reply_always(Reply(status=403))
    stand_in.reply_next(Reply(status=429, headers={"Retry-After": "7"}))
    first = httpx.post(stand_in.url, json={"topic": "t"})
    second = httpx.post(stand_in.url, json={"topic": "t"})
    assert (first.status_code, first.headers["retry-after"]) == (429, "7")
    assert second.status_code == 403
    assert second.json() == {"code": 40301, "http": 403, "error": "forbidden"}


def test_hang_delays_the_answer(stand_in):
    stand_in.hang(2, times=1)
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(stand_in.url, json={"topic": "t"}, timeout=0.2)
    assert httpx.post(stand_in.url, json={"topic": "t"}, timeout=2).status_code == 200
    assert len(stand_in.requests) == 2


def test_reset_connections_answers_nothing(stand_in):
    stand_in.reset_connections(times=1)
    with pytest.raises(httpx.ReadError, match="Connection reset by peer"):
        httpx.post(stand_in.url, json={"topic": "t"})
    # Recorded like any request, and the next one is answered again.
    assert httpx.post(stand_in.url, json={"topic": "t"}).status_code == 200
    assert len(stand_in.requests) == 2


def test_reset_forgets_requests_and_replies(stand_in):
    stand_in.reply_always(Reply(status=500))
    httpx.post(stand_in.url, json={"topic": "t"})
    stand_in.reset()
    assert stand_in.requests == []
    assert httpx.post(stand_in.url, json={"topic": "t"}).status_code == 200


def test_control_api_over_http(stand_in):
    control = f"{stand_in.url}_stand_in/"
    httpx.post(f"{control}replies", json={"status": 500, "times": 1})
    assert httpx.post(stand_in.url, json={"topic": "t", "message": "x"}).status_code == 500
    assert httpx.post(stand_in.url, json={"topic": "t", "message": "y"}).status_code == 200
    recorded = httpx.get(f"{control}requests").json()
    assert [request["json"]["message"] for request in recorded] == ["x", "y"]
    httpx.post(f"{control}reset")
    assert httpx.get(f"{control}requests").json() == []


def test_wait_for_requests_times_out_clearly(stand_in):
    with pytest.raises(TimeoutError, match=r"Expected 1 requests within 0\.05s, got 0"):
        stand_in.wait_for_requests(1, timeout=0.05)


def test_runs_as_a_process(tmp_path):
    port = free_port()
    argv = [sys.executable, "-m", "tests.ntfy_server", "--port", str(port), "--fail-first", "1"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    server = Service("ntfy stand-in", argv, env, tmp_path / "ntfy.log").start()
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_for_http(f"{url}v1/health", server)
        assert httpx.post(url, json={"topic": "t", "message": "1"}).status_code == 500
        assert httpx.post(url, json={"topic": "t", "message": "2"}).status_code == 200
        assert len(httpx.get(f"{url}_stand_in/requests").json()) == 2
    finally:
        server.stop()
    assert f"ntfy stand-in listening on {url}" in server.output()


def test_each_topic_has_a_readable_inbox_page(stand_in):
    httpx.post(
        stand_in.url, json={"topic": "alerts", "message": "<b>Disk</b> full", "title": "db1"}
    )
    httpx.post(stand_in.url, json={"topic": "other", "message": "Not for alerts"})
    stand_in.reply_next(Reply(status=500))
    httpx.post(stand_in.url, json={"topic": "alerts", "message": "Refused one"})

    response = httpx.get(f"{stand_in.url}alerts")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    page = response.text
    assert "&lt;b&gt;Disk&lt;/b&gt; full" in page  # escaped, as typed
    assert "db1" in page
    assert "1 message received" in page
    assert "Not for alerts" not in page
    assert "Refused one" not in page  # only what ntfy would have delivered

    empty = httpx.get(f"{stand_in.url}nobody").text
    assert "No message yet" in empty
