"""The one place dbtasks imports the tasks framework from.

Django 6.0+ ships it as ``django.tasks``; on Django 5.2 LTS the same API
comes from the ``django-tasks`` backport (``django_tasks``). Everything else
in dbtasks imports these names from here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import django

# Type checkers read the Django 6 names (django-stubs describes them); the
# backport's API is the same, so its branch needs no second set of types.
if TYPE_CHECKING or django.VERSION >= (6, 0):
    from django.tasks import Task
    from django.tasks import TaskContext
    from django.tasks import TaskResult
    from django.tasks import TaskResultStatus
    from django.tasks import task
    from django.tasks import task_backends
    from django.tasks.backends.base import BaseTaskBackend
    from django.tasks.base import TaskError
    from django.tasks.exceptions import InvalidTask
    from django.tasks.exceptions import InvalidTaskBackend
    from django.tasks.exceptions import TaskResultDoesNotExist
    from django.tasks.signals import task_enqueued
    from django.tasks.signals import task_finished
    from django.tasks.signals import task_started
    from django.utils.json import normalize_json
else:  # Django 5.2 LTS with the django-tasks backport.
    from django_tasks import task
    from django_tasks import task_backends
    from django_tasks.backends.base import BaseTaskBackend
    from django_tasks.base import Task
    from django_tasks.base import TaskContext
    from django_tasks.base import TaskError
    from django_tasks.base import TaskResult
    from django_tasks.base import TaskResultStatus
    from django_tasks.exceptions import InvalidTaskBackendError as InvalidTaskBackend
    from django_tasks.exceptions import InvalidTaskError as InvalidTask
    from django_tasks.exceptions import TaskResultDoesNotExist
    from django_tasks.signals import task_enqueued
    from django_tasks.signals import task_finished
    from django_tasks.signals import task_started
    from django_tasks.utils import normalize_json

__all__ = [
    "BaseTaskBackend",
    "InvalidTask",
    "InvalidTaskBackend",
    "Task",
    "TaskContext",
    "TaskError",
    "TaskResult",
    "TaskResultDoesNotExist",
    "TaskResultStatus",
    "normalize_json",
    "task",
    "task_backends",
    "task_enqueued",
    "task_finished",
    "task_started",
]
