"""A delivery's error, twice: in plain words for the sender, and as it was raised.

The task stores what Python raised (``PermanentFailure: ntfy answered 403
Forbidden: ...``). The person who pressed Send wants to know what happened
and whether to do anything: ``plain_error()`` says that, ``one_line_error()``
keeps the exact text one click away.
"""

from __future__ import annotations

import re

from dbtasks.compat import TaskError

MAX_ERROR_LENGTH = 300

# ntfy's HTTP answers, as ntfy.read_answer() words them, in plain words.
STATUS_WORDS = {
    400: "The ntfy server refused the message as malformed",
    401: "The ntfy server refused the message: the access token is missing or wrong",
    403: "The ntfy server refused the message: this topic may not be written to",
    404: "The ntfy server does not know this topic",
    413: "The message is too large for the ntfy server",
    429: "The ntfy server asked to slow down",
}
ANSWERED = re.compile(r"ntfy answered (\d{3})")

# Errors that are not about ntfy, by exception class name.
CLASS_WORDS = {
    "TaskCancelled": "Cancelled before it was sent.",
    "WorkerLost": "The worker sending it stopped unexpectedly; it will be tried again.",
    "WorkerShutdown": "The worker sending it was shut down; it will be tried again.",
}


def plain_error(error: TaskError) -> str:
    """Say what went wrong as a sentence a sender understands."""
    name = error.exception_class_path.rpartition(".")[2]
    if name in CLASS_WORDS:
        return CLASS_WORDS[name]
    message = one_line_error(error.exception_class_path, error.traceback, limit=None)
    if "no longer exists" in message:
        return "The notification was deleted before it could be sent."
    if "did not answer within" in message:
        return "The ntfy server did not answer in time."
    if "Cannot reach ntfy" in message:
        return "The ntfy server could not be reached."
    if "without a message id" in message:
        return "The address it was sent to is not an ntfy server."
    if "redirecting to" in message:
        return "The ntfy address moved; the server's settings need the new one."
    answered = ANSWERED.search(message)
    if answered:
        code = int(answered.group(1))
        words = STATUS_WORDS.get(code)
        if words is None and code >= 500:
            words = "The ntfy server had a problem of its own"
        if words:
            return f"{words} (HTTP {code})."
    return f"Sending failed with an unexpected error ({name or 'Error'})."


def one_line_error(
    exception_class_path: str, traceback: str, *, limit: int | None = MAX_ERROR_LENGTH
) -> str:
    """Return "ExceptionClass: first line of its message" from a stored error.

    The message is read from the traceback's last line naming the class
    (Python writes ``module.Class: message`` there, ``Class: message`` for
    builtins), so chained causes and multi-line messages do not leak in.
    ``limit`` cuts a long message, marked with an ellipsis.
    """
    name = exception_class_path.rpartition(".")[2] or "Error"
    builtin = exception_class_path.removeprefix("builtins.")
    for line in reversed(traceback.splitlines()):
        for prefix in (exception_class_path, builtin):
            if line == prefix:
                return name
            if line.startswith(f"{prefix}: "):
                text = line.removeprefix(f"{prefix}: ").strip()
                if limit is not None and len(text) > limit:
                    text = text[: limit - 1] + "…"
                return f"{name}: {text}"
    return name
