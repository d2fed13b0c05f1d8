"""What may go into a JSON column: checked before it is written, not after."""

from __future__ import annotations

import json
from typing import Any

from dbtasks.compat import normalize_json


def to_json_value(value: Any, *, what: str) -> Any:
    """Return ``value`` as it will come back out of a JSON column.

    Raise ``TypeError``/``ValueError`` naming ``what`` when it would not come
    back the same: a datetime or set, a dict with non-string keys, NaN, or
    text Postgres' jsonb cannot hold (NUL characters, lone surrogates).
    """
    try:
        normalized = normalize_json(value)
    except TypeError as error:
        raise TypeError(f"{what} cannot be stored as JSON: {error}.") from None
    try:
        text = json.dumps(normalized, allow_nan=False, ensure_ascii=False)
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{what} contains text that is not valid Unicode.") from None
    except ValueError as error:
        raise ValueError(f"{what} is not valid JSON: {error}.") from None
    if "\\u0000" in text:
        raise ValueError(f"{what} must not contain NUL characters.")
    if json.loads(text) != normalized:
        raise ValueError(
            f"{what} would not survive a JSON round trip (dict keys must be strings): "
            f"{normalized!r} would come back as {json.loads(text)!r}."
        )
    return normalized
