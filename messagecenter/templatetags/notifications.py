"""Filters for the notification rows: tags as ntfy shows them, errors in plain words."""

from __future__ import annotations

from django import template

from dbtasks.compat import TaskError
from messagecenter.emoji import Tag
from messagecenter.emoji import ntfy_tags as tags_of
from messagecenter.errors import one_line_error
from messagecenter.errors import plain_error as plain_words

register = template.Library()


@register.filter
def ntfy_tags(tags: list[str]) -> list[Tag]:
    return tags_of(tags)


@register.filter
def plain_error(error: TaskError | None) -> str:
    return plain_words(error) if error else ""


@register.filter
def error_detail(error: TaskError | None) -> str:
    if error is None:
        return ""
    return one_line_error(error.exception_class_path, error.traceback, limit=None)
