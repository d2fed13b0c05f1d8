"""Make an attempt's outcome something the database will take, and tell failures apart.

An attempt must be recorded whatever the task did, or its row stays RUNNING
under the worker's live heartbeat. Two things stand in the way:

- Text the database cannot hold. Postgres text refuses NUL characters, UTF-8
  has no place for lone surrogates, and a traceback of megabytes (a huge
  message, deep recursion) costs every later read of the row.
  ``storable_text()`` escapes the first two and cuts the middle out of the
  third, keeping the start and the end where the cause usually is.
- Errors that will never go away. A ``DataError`` or ``IntegrityError`` (a
  value the column refuses) fails the same way on every try, unlike an
  ``OperationalError`` or ``InterfaceError`` (the server restarting, the
  connection dropped), which the worker retries until the database answers.
  ``is_permanent()`` says which is which.
"""

from __future__ import annotations

from django.db import DataError
from django.db import IntegrityError

# The most of a traceback kept (characters): the start and end of a deep one.
MAX_TRACEBACK_LENGTH = 64 * 1024
# Exception class paths are short; a longer one is a class built at run time.
MAX_CLASS_PATH_LENGTH = 1000

# Errors a retry of the same write would meet again. ValueError and
# UnicodeError come from the driver, before anything reaches the server
# (psycopg refuses NUL in a text parameter that way).
PERMANENT_ERRORS: tuple[type[Exception], ...] = (DataError, IntegrityError, ValueError)


def storable_text(text: str, limit: int) -> str:
    """``text`` without NUL characters or lone surrogates, at most about ``limit`` long."""
    if "\x00" in text:
        text = text.replace("\x00", "\\x00")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    if len(text) <= limit:
        return text
    head = limit * 3 // 4
    tail = limit - head
    cut = len(text) - head - tail
    return f"{text[:head]}\n[... {cut:,} characters cut ...]\n{text[-tail:]}"


def is_permanent(error: Exception) -> bool:
    """Whether writing the same values again would fail the same way."""
    return isinstance(error, PERMANENT_ERRORS)
