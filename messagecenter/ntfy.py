"""A small ntfy client: publish one message, or raise an error that says why not.

``send_notification`` (``messagecenter/tasks.py``) calls ``publish()``. It
uses ntfy's JSON API (a POST to the server's root URL naming the topic), so
titles and messages in any script travel as UTF-8 JSON: HTTP headers could
only carry Latin-1. Errors come in two kinds: ``NtfyRejected`` (retrying
cannot help) and ``NtfyUnavailable`` (it may).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit
from urllib.parse import urlunsplit

import httpx
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from messagecenter import outbound

# Statuses that mean "this request will never be accepted as it is": a bad
# request, a missing or refused token, an unknown topic, a message too large.
PERMANENT_STATUS_CODES = frozenset({400, 401, 403, 404, 413})

# ntfy topic names: 1-64 letters, digits, "-" and "_".
TOPIC_RE = re.compile(r"^[-_A-Za-z0-9]{1,64}$")

NTFY_URL_HELP = "Set NTFY_URL to your ntfy topic URL, e.g. https://ntfy.sh/<topic>."


class NtfyError(Exception):
    """ntfy did not take the message."""

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


class NtfyRejected(NtfyError):
    """ntfy refused the message; sending it again would fail the same way."""


class NtfyUnavailable(NtfyError):
    """ntfy could not take the message now (down, overloaded, unreachable); try later."""

    def __init__(
        self, message: str, *, status_code: int | None = None, retry_after: str | None = None
    ) -> None:
        super().__init__(message, status_code=status_code)
        # What ntfy's Retry-After header said, when it said something.
        self.retry_after = retry_after

    @property
    def retry_after_seconds(self) -> float | None:
        """Retry-After as seconds from now (it may be seconds or an HTTP date), capped at 1 h."""
        if not self.retry_after:
            return None
        value = self.retry_after.strip()
        if value.isdigit():
            seconds = float(value)
        else:
            try:
                when = parsedate_to_datetime(value)
            except (TypeError, ValueError):
                return None  # not a value we understand: the usual backoff applies
            if when.tzinfo is None:
                return None
            seconds = (when - datetime.now(UTC)).total_seconds()
        # A server asking for more than an hour is not a wait to honour blindly.
        return min(max(seconds, 0.0), 3600.0)


@dataclass(frozen=True, slots=True, kw_only=True)
class Message:
    """What to publish: the fields of ntfy's JSON publishing API that we use."""

    message: str
    title: str = ""
    priority: int = 3
    tags: Sequence[str] = ()


def split_topic_url(url: str) -> tuple[str, str]:
    """Split an ntfy topic URL into (server URL, topic).

    ``https://ntfy.example.com/alerts`` gives ``("https://ntfy.example.com/",
    "alerts")``; a server under a path keeps it (``https://host/ntfy/alerts``
    gives ``("https://host/ntfy/", "alerts")``). Raise ImproperlyConfigured
    when the URL is not an http(s) URL ending with a valid topic name.
    """
    if not url:
        raise ImproperlyConfigured(f"NTFY_URL is empty. {NTFY_URL_HELP}")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - reading it checks the port is a number in range
    except ValueError:  # "Invalid IPv6 URL", a port that is not a number
        parts = urlsplit("")
    base_path, _, topic = parts.path.rstrip("/").rpartition("/")
    if parts.scheme not in {"http", "https"} or not parts.netloc or not TOPIC_RE.match(topic):
        raise ImproperlyConfigured(
            f"NTFY_URL {url!r} is not an ntfy topic URL: it must be http(s) and end with "
            f"a topic of 1-64 letters, digits, '-' or '_'. {NTFY_URL_HELP}"
        )
    server = urlunsplit((parts.scheme, parts.netloc, f"{base_path}/", "", ""))
    return server, topic


def publish(
    message: Message,
    *,
    url: str | None = None,
    token: str | None = None,
    timeout: float | None = None,
) -> dict[str, Any]:
    """Publish ``message`` and return ntfy's answer: ``{"id", "time", "topic"}``.

    ``url``, ``token`` and ``timeout`` default to the NTFY_URL, NTFY_TOKEN and
    NTFY_TIMEOUT settings, read at call time.
    """
    url = settings.NTFY_URL if url is None else url
    token = settings.NTFY_TOKEN if token is None else token
    timeout = settings.NTFY_TIMEOUT if timeout is None else timeout
    server, topic = split_topic_url(url)

    payload: dict[str, Any] = {
        "topic": topic,
        "message": message.message,
        "priority": message.priority,
    }
    if message.title:
        payload["title"] = message.title
    if message.tags:
        payload["tags"] = list(message.tags)
    headers = {"Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"

    try:
        with (
            outbound.client(timeout) as http,
            http.stream("POST", server, json=payload, headers=headers) as streamed,
        ):
            response = outbound.read_capped(streamed)
    except outbound.RefusedDestination as error:
        raise NtfyRejected(str(error)) from error
    except outbound.AnswerTooLarge as error:
        raise NtfyRejected(f"ntfy at {server} answered, but {error}.") from error
    except (httpx.InvalidURL, httpx.UnsupportedProtocol, httpx.TooManyRedirects) as error:
        # The URL itself is wrong: the channel must be fixed, a retry cannot help.
        raise NtfyRejected(f"Cannot post to {server}: {error}.") from error
    except httpx.DecodingError as error:
        raise NtfyRejected(f"ntfy at {server} sent an answer that cannot be decoded.") from error
    except httpx.TimeoutException as error:
        raise NtfyUnavailable(
            f"ntfy at {server} did not answer within {timeout:g} s ({type(error).__name__})."
        ) from error
    except httpx.TransportError as error:
        raise NtfyUnavailable(
            f"Cannot reach ntfy at {server}: {str(error) or type(error).__name__}."
        ) from error
    except httpx.HTTPError as error:
        # Anything else httpx raises (a stream closed mid-answer, say) may pass.
        raise NtfyUnavailable(
            f"ntfy at {server} failed: {str(error) or type(error).__name__}."
        ) from error
    return read_answer(response)


def read_answer(response: httpx.Response) -> dict[str, Any]:
    """Return the published message's id, time and topic, or raise an NtfyError."""
    status = response.status_code
    said = f"ntfy answered {status} {response.reason_phrase}".rstrip()
    if response.is_success:
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("id"), str):
            # Something answered, but not ntfy: retrying will not change that.
            raise NtfyRejected(
                f"{said} without a message id; is NTFY_URL an ntfy topic URL?",
                status_code=status,
            )
        return {"id": body["id"], "time": body.get("time"), "topic": body.get("topic")}
    if response.is_redirect:
        raise NtfyRejected(
            f"{said}, redirecting to {response.headers.get('location', '?')}; "
            "set NTFY_URL to the final address.",
            status_code=status,
        )
    detail = error_detail(response)
    if status in PERMANENT_STATUS_CODES:
        raise NtfyRejected(f"{said}{detail}.", status_code=status)
    retry_after = response.headers.get("retry-after")
    if status == 429 and retry_after:
        detail += f" (Retry-After: {retry_after})"
    raise NtfyUnavailable(f"{said}{detail}.", status_code=status, retry_after=retry_after)


def ntfy_id_of(return_value: Any) -> str:
    """The id ntfy gave a message, from what ``publish()`` returned (stored as the
    task's return value); "" if there is none."""
    if isinstance(return_value, dict):
        ntfy_id = return_value.get("id")
        if isinstance(ntfy_id, str):
            return ntfy_id
    return ""


def error_detail(response: httpx.Response) -> str:
    """Return ntfy's own explanation (``": topic is forbidden"``), or ``""``."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        text = body["error"]
    else:
        text = response.text if "text/plain" in response.headers.get("content-type", "") else ""
    text = " ".join(text.split())[:200]
    return f": {text}" if text else ""
