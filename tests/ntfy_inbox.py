"""The stand-in ntfy server's inbox page: what a subscriber to a topic would have seen.

``GET /<topic>`` on the stand-in (``make run-offline`` prints the link)
answers a small HTML page with the messages it accepted for that topic,
newest first: time (UTC), priority, title, tags and message, escaped. It
refreshes itself every few seconds, like a phone that stays subscribed.
"""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any

PRIORITIES = {1: "min", 2: "low", 3: "default", 4: "high", 5: "urgent"}

STYLE = """
body { font: 16px/1.5 system-ui, sans-serif; margin: 0 auto; padding: 1rem; max-width: 40rem;
       color: #1d2330; background: #f5f6f8; }
h1 { font-size: 1.25rem; } ol { list-style: none; padding: 0; display: grid; gap: 0.75rem; }
li { background: #fff; border: 1px solid #dde1e8; border-radius: 10px; padding: 0.75rem 1rem; }
.meta { color: #5b6475; font-size: 0.875rem; } .title { font-weight: 700; }
.message { white-space: pre-wrap; overflow-wrap: anywhere; margin: 0.25rem 0 0; }
@media (prefers-color-scheme: dark) {
  body { color: #e8ebf1; background: #12151c; } li { background: #1b2029; border-color: #303747; }
  .meta { color: #a3acbd; }
}
"""


def inbox_page(topic: str, messages: Sequence[Mapping[str, Any]]) -> bytes:
    """The page for ``topic``: ``messages`` are ntfy's answers, oldest first."""
    mine = [message for message in messages if message.get("topic") == topic]
    items = "\n".join(_item(message) for message in reversed(mine))
    if not items:
        items = "<li>No message yet. Send one from Message Center; it shows up here.</li>"
    name = html.escape(topic)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="refresh" content="5">
<title>{name}: stand-in ntfy inbox</title><style>{STYLE}</style></head>
<body><main>
<h1>Topic “{name}” on the stand-in ntfy server</h1>
<p class="meta">{len(mine)} message{"" if len(mine) == 1 else "s"} received, newest first.
Times in UTC. This page reloads every 5 seconds.</p>
<ol>
{items}
</ol></main></body></html>
""".encode()


def _item(message: Mapping[str, Any]) -> str:
    when = dt.datetime.fromtimestamp(float(message.get("time") or 0), dt.UTC)
    priority = PRIORITIES.get(message.get("priority") or 3, str(message.get("priority")))
    tags = ", ".join(str(tag) for tag in message.get("tags") or [])
    title = message.get("title") or ""
    parts = [
        f'<p class="meta"><time datetime="{when.isoformat()}">'
        f"{when:%d %b %Y, %H:%M:%S} UTC</time> · {html.escape(priority)} priority"
        + (f" · tags: {html.escape(tags)}" if tags else "")
        + "</p>",
    ]
    if title:
        parts.append(f'<p class="title">{html.escape(str(title))}</p>')
    parts.append(f'<p class="message">{html.escape(str(message.get("message", "")))}</p>')
    return f"<li>{''.join(parts)}</li>"
