"""What may go into a JSON column: checked before it is written, not after."""

from __future__ import annotations

import json
import re
from typing import Any

from dbtasks.compat import normalize_json

# A NUL character as json.dumps writes it: \u0000 whose backslash is not
# itself escaped (an even number of backslashes before it). A plain
# substring test would also refuse the harmless text "\\u0000".
_JSON_NUL = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")


class PayloadTooLarge(ValueError):
    """A value is larger as JSON than the backend's OPTIONS allow."""


def to_json_value(value: Any, *, what: str, max_size: int | None = None) -> Any:
    """Return ``value`` as it will come back out of a JSON column.

    Raise ``TypeError``/``ValueError`` naming ``what`` when it would not come
    back the same: a datetime or set, a dict with non-string keys, NaN, or
    text Postgres' jsonb cannot hold (NUL characters, lone surrogates).
    """
    try:
        normalized = normalize_json(value)
    except TypeError as error:  # a type JSON has no place for (datetime, set...)
        raise TypeError(f"{what} cannot be stored as JSON: {error}.") from None
    except ValueError as error:  # bytes that are not UTF-8
        raise ValueError(f"{what} cannot be stored as JSON: {error}.") from None
    try:
        text = json.dumps(normalized, allow_nan=False, ensure_ascii=False)
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError:
        raise ValueError(
            f"{what} cannot be stored as JSON: it contains text that is not valid Unicode."
        ) from None
    except ValueError as error:  # NaN or infinity
        raise ValueError(f"{what} cannot be stored as JSON: {error}.") from None
    if max_size is not None and size > max_size:
        raise PayloadTooLarge(
            f"{what} cannot be stored: {size:,} bytes as JSON is over the limit "
            f"of {max_size:,} bytes."
        )
    if _JSON_NUL.search(text):
        raise ValueError(f"{what} cannot be stored as JSON: it contains a NUL character.")
    if json.loads(text) != normalized:
        raise ValueError(
            f"{what} would not survive a JSON round trip (dict keys must be strings): "
            f"{normalized!r} would come back as {json.loads(text)!r}."
        )
    return normalized
