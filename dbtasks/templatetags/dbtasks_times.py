"""``{% load dbtasks_times %}``: ``{{ value|timestamp }}``, a time labelled with its zone."""

from __future__ import annotations

from datetime import datetime

from django import template
from django.utils.safestring import SafeString

from dbtasks.times import time_element

register = template.Library()


@register.filter
def timestamp(value: datetime | None) -> SafeString:
    return time_element(value)
