"""A stand-in ntfy server on loopback: what the tests deliver to, never the internet.

It speaks the two ways of publishing that ntfy has (JSON to the server root,
or the message as the body of a POST to ``/<topic>``), records every request,
and answers as told: like ntfy (the default), with a given status, after a
delay, failing the first N requests, or not at all (a connection reset). Use it in tests::

    with NtfyStandIn() as ntfy:          # or the ``ntfy`` pytest fixture
        ntfy.fail_first(2, status=500)
        ... deliver to ntfy.topic_url ...
        assert ntfy.requests[-1].published["message"] == "Hello"

or as a process (``make run`` offline mode, browser tests)::

    python -m tests.ntfy_server --port 8090 [--status 500] [--fail-first 2] [--hang 5]

A process is inspected and steered over HTTP: ``GET /_stand_in/requests``,
``POST /_stand_in/replies`` (JSON: status, times, delay, headers, body) and
``POST /_stand_in/reset``. ``GET /<topic>`` is a page a person can read:
the messages accepted for that topic (``tests/ntfy_inbox.py``). The module
imports nothing from Django.
"""

from __future__ import annotations

import argparse
import collections
import json
import logging
import secrets
import socket
import string
import struct
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import asdict
from dataclasses import dataclass
from dataclasses import field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from http.server import ThreadingHTTPServer
from typing import Any
from typing import Self
from urllib.parse import unquote

from tests.ntfy_inbox import inbox_page

logger = logging.getLogger(__name__)

CONTROL_PREFIX = "/_stand_in/"
DEFAULT_TOPIC = "test-topic"
ID_ALPHABET = string.ascii_letters + string.digits
# ntfy keeps messages 12 hours by default; its answers say when they expire.
CACHE_SECONDS = 12 * 3600


@dataclass(frozen=True, slots=True)
class Reply:
    """How to answer one request.

    ``body=None`` answers like ntfy: the published message as JSON on a 2xx,
    an ntfy-style ``{"code", "http", "error"}`` otherwise. ``delay`` seconds
    pass before the answer (a hanging server, to test timeouts). ``reset``
    answers nothing: the connection is reset (TCP RST), as when a server or
    a proxy in front of it crashes mid-request.
    """

    status: int = 200
    body: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0
    reset: bool = False

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Reply:
        return cls(
            status=int(data.get("status", 200)),
            body=data.get("body"),
            headers=dict(data.get("headers", {})),
            delay=float(data.get("delay", 0)),
            reset=bool(data.get("reset", False)),
        )


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request as the stand-in received it."""

    method: str
    path: str
    headers: Mapping[str, str]  # names in lower case
    body: bytes
    received_at: float

    @property
    def json(self) -> Any:
        """The body parsed as JSON, or None if it is not JSON."""
        try:
            return json.loads(self.body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return None

    @property
    def published(self) -> dict[str, Any]:
        """What was published: topic, message, title, priority, tags (whichever API)."""
        data = self.json
        if self.path.rstrip("/") == "" and isinstance(data, dict):
            return data
        headers = self.headers
        tags = headers.get("x-tags") or headers.get("tags") or ""
        published: dict[str, Any] = {
            "topic": unquote(self.path.strip("/").split("?")[0]),
            "message": self.body.decode("utf-8", errors="replace"),
        }
        if title := headers.get("x-title") or headers.get("title"):
            published["title"] = title
        if priority := headers.get("x-priority") or headers.get("priority"):
            published["priority"] = int(priority) if priority.isdigit() else priority
        if tags:
            published["tags"] = [tag.strip() for tag in tags.split(",") if tag.strip()]
        return published

    def to_json(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "path": self.path,
            "headers": dict(self.headers),
            "body": self.body.decode("utf-8", errors="replace"),
            "json": self.json,
            "received_at": self.received_at,
        }


class NtfyStandIn:
    """A threaded HTTP server on 127.0.0.1 that answers like ntfy, or as told."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, topic: str = DEFAULT_TOPIC) -> None:
        self.topic = topic
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._accepted: list[dict[str, Any]] = []  # ntfy's answers, for the inbox page
        self._next_replies: collections.deque[Reply] = collections.deque()
        self._default_reply = Reply()
        self._stopping = threading.Event()
        self._server = _Server((host, port), _Handler)
        self._server.daemon_threads = True
        self._server.stand_in = self
        self._thread: threading.Thread | None = None

    # --- Where it listens -----------------------------------------------------

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """The server's root URL, where ntfy's JSON API publishes."""
        host = self._server.server_address[0]
        assert isinstance(host, str)  # an IP address, not a Unix socket path
        return f"http://{host}:{self.port}/"

    @property
    def topic_url(self) -> str:
        """The topic URL, what NTFY_URL is set to."""
        return f"{self.url}{self.topic}"

    # --- What it received -----------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far (control requests excepted), oldest first."""
        with self._lock:
            return list(self._requests)

    def wait_for_requests(self, count: int, timeout: float = 5.0) -> list[RecordedRequest]:
        """Wait until ``count`` requests have arrived; return them all."""
        deadline = time.monotonic() + timeout
        while len(received := self.requests) < count:
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"Expected {count} requests within {timeout}s, got {len(received)}."
                )
            time.sleep(0.01)
        return received

    # --- How it answers -------------------------------------------------------

    def reply_always(self, reply: Reply) -> None:
        """Answer every request (after any ``reply_next`` ones) with ``reply``."""
        with self._lock:
            self._default_reply = reply

    def reply_next(self, *replies: Reply) -> None:
        """Answer the next requests with these, in order, then as before."""
        with self._lock:
            self._next_replies.extend(replies)

    def fail_first(self, count: int, status: int = 500) -> None:
        """Answer the next ``count`` requests with ``status``, then succeed."""
        self.reply_next(*[Reply(status=status)] * count)

    def reset_connections(self, times: int | None = None) -> None:
        """Reset the connection of the next ``times`` requests (or of all) without answering."""
        if times is None:
            self.reply_always(Reply(reset=True))
        else:
            self.reply_next(*[Reply(reset=True)] * times)

    def hang(self, seconds: float, times: int | None = None) -> None:
        """Wait ``seconds`` before answering (the next ``times`` requests, or all)."""
        if times is None:
            self.reply_always(Reply(delay=seconds))
        else:
            self.reply_next(*[Reply(delay=seconds)] * times)

    def reset(self) -> None:
        """Forget the requests received and answer like ntfy again."""
        with self._lock:
            self._requests.clear()
            self._accepted.clear()
            self._next_replies.clear()
            self._default_reply = Reply()

    def _record(self, request: RecordedRequest) -> Reply:
        with self._lock:
            self._requests.append(request)
            return self._next_replies.popleft() if self._next_replies else self._default_reply

    def _accept(self, message: dict[str, Any]) -> None:
        with self._lock:
            self._accepted.append(message)

    def accepted(self) -> list[dict[str, Any]]:
        """The messages it answered like ntfy (2xx), oldest first."""
        with self._lock:
            return list(self._accepted)

    # --- Life cycle -----------------------------------------------------------

    def start(self) -> Self:
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            # How often it checks for shutdown(): keeps stop() (each test's teardown) quick.
            kwargs={"poll_interval": 0.02},
            name="ntfy-stand-in",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # hung requests answer now
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def serve_forever(self) -> None:
        """Serve in this thread until interrupted (the command-line mode)."""
        try:
            self._server.serve_forever()
        finally:
            self._stopping.set()
            self._server.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def ntfy_message(published: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON ntfy answers a publish with: the message, with its new id."""
    now = int(time.time())
    message = {
        "id": "".join(secrets.choice(ID_ALPHABET) for _ in range(12)),
        "time": now,
        "expires": now + CACHE_SECONDS,
        "event": "message",
        "topic": published.get("topic", ""),
        "message": published.get("message", ""),
    }
    for key in ("title", "priority", "tags"):
        if published.get(key):
            message[key] = published[key]
    return message


def ntfy_error(status: int) -> dict[str, Any]:
    """An error body shaped like ntfy's (code, http, error)."""
    try:
        phrase = HTTPStatus(status).phrase.lower()
    except ValueError:
        phrase = "error"
    return {"code": status * 100 + 1, "http": status, "error": phrase}


class _Server(ThreadingHTTPServer):
    stand_in: NtfyStandIn  # what its handlers answer for


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "ntfy-stand-in"
    protocol_version = "HTTP/1.1"

    @property
    def stand_in(self) -> NtfyStandIn:
        return self.server.stand_in

    def do_GET(self) -> None:
        if self.path == f"{CONTROL_PREFIX}requests":
            self._send(200, [request.to_json() for request in self.stand_in.requests])
        elif self.path in {"/", "/v1/health"}:
            self._send(200, {"healthy": True})
        elif (topic := unquote(self.path.split("?")[0].strip("/"))) and "/" not in topic:
            # A topic's inbox, readable in a browser (ntfy serves its web app here).
            page = inbox_page(topic, self.stand_in.accepted())
            self._send(200, page, {"Content-Type": "text/html; charset=utf-8"})
        else:
            self._send(404, ntfy_error(404))

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path.startswith(CONTROL_PREFIX):
            self._control(body)
            return
        request = RecordedRequest(
            method=self.command,
            path=self.path,
            headers={name.lower(): value for name, value in self.headers.items()},
            body=body,
            received_at=time.time(),
        )
        reply = self.stand_in._record(request)
        logger.info("%s %s %s -> %d", self.command, self.path, body[:200], reply.status)
        if reply.delay and self.stand_in._stopping.wait(reply.delay):
            return  # shutting down: the client has long given up
        if reply.reset:
            self._reset_connection()
            return
        self._answer(request, reply)

    do_PUT = do_POST

    def _answer(self, request: RecordedRequest, reply: Reply) -> None:
        if reply.body is not None:
            body = reply.body
        elif 200 <= reply.status < 300:
            published = request.published
            if request.path.rstrip("/") == "" and not isinstance(request.json, dict):
                self._send(
                    400, {"code": 40024, "http": 400, "error": "invalid request: body must be JSON"}
                )
                return
            body = ntfy_message(published)
            self.stand_in._accept(body)
        else:
            body = ntfy_error(reply.status)
        self._send(reply.status, body, reply.headers)

    def _reset_connection(self) -> None:
        # A zero linger time makes close() send RST instead of FIN: the client
        # reads "Connection reset by peer", not an orderly end of stream.
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        self.connection.close()

    def _control(self, body: bytes) -> None:
        if self.path == f"{CONTROL_PREFIX}reset":
            self.stand_in.reset()
            self._send(200, {"ok": True})
            return
        if self.path == f"{CONTROL_PREFIX}replies":
            data = json.loads(body or b"{}")
            reply = Reply.from_json(data)
            times = data.get("times")
            if times is None:
                self.stand_in.reply_always(reply)
            else:
                self.stand_in.reply_next(*[reply] * int(times))
            self._send(200, {"ok": True, "reply": asdict(reply)})
            return
        self._send(404, ntfy_error(404))

    def _send(self, status: int, body: Any, headers: Mapping[str, str] | None = None) -> None:
        data = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode()
        try:
            self.send_response(status)
            if "Content-Type" not in (headers or {}):
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            # The client stopped waiting (a timeout test): nobody to answer.
            logger.debug("Client went away before the answer to %s", self.path)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        logger.debug(format, *args)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.ntfy_server", description="Run the stand-in ntfy server."
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: %(default)s)"
    )
    parser.add_argument("--port", type=int, default=0, help="port (default: any free port)")
    parser.add_argument("--status", type=int, help="answer every publish with this status")
    parser.add_argument(
        "--fail-first", type=int, default=0, help="answer the first N publishes with 500"
    )
    parser.add_argument(
        "--hang", type=float, default=0.0, help="wait this many seconds before each answer"
    )
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    stand_in = NtfyStandIn(host=args.host, port=args.port)
    if args.status or args.hang:
        stand_in.reply_always(Reply(status=args.status or 200, delay=args.hang))
    if args.fail_first:
        stand_in.fail_first(args.fail_first)
    logger.info("ntfy stand-in listening on %s (publish to %s<topic>)", stand_in.url, stand_in.url)
    try:
        stand_in.serve_forever()
    except KeyboardInterrupt:
        logger.info("ntfy stand-in stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
