"""System checks for Message Center's settings, run by ``manage.py check``.

Settings never raise at import; a production setting that is missing or
malformed is reported here instead, saying what to set.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.apps import AppConfig
from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured

from messagecenter.ntfy import NTFY_URL_HELP
from messagecenter.ntfy import split_topic_url

E001_MSG = "NTFY_URL is not set, so notifications cannot be delivered."
E001_HINT = NTFY_URL_HELP
E002_MSG = "NTFY_URL {url!r} is not an ntfy topic URL."
E002_HINT = (
    "Use an http(s) URL that ends with a topic of 1-64 letters, digits, '-' or '_', "
    "e.g. https://ntfy.sh/<topic>."
)


def check_ntfy_url(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """NTFY_URL must be an ntfy topic URL; it may be empty only while DEBUG is on."""
    url = settings.NTFY_URL
    if not url:
        if settings.DEBUG:
            return []
        return [checks.Error(E001_MSG, hint=E001_HINT, id="messagecenter.E001")]
    try:
        split_topic_url(url)
    except ImproperlyConfigured:
        return [checks.Error(E002_MSG.format(url=url), hint=E002_HINT, id="messagecenter.E002")]
    return []
