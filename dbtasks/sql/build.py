"""Plain SQL built from a model's fields, for the statements that run once per task.

The ORM's query building costs more than the database's own work for these
small statements (the close of an attempt, enqueue's INSERT with its
NOTIFY), and neither a data-modifying CTE nor ``RETURNING`` in one of them
is something the ORM writes. Values go through ``pre_save()`` and
``get_db_prep_save()``, as in the ORM's own INSERT.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.core.exceptions import FieldError
from django.db import models
from django.db.backends.base.base import BaseDatabaseWrapper


def concrete_field(model: type[models.Model], name: str) -> models.Field[Any, Any]:
    """``model``'s field ``name``, which must be stored in a column of its own."""
    field = model._meta.get_field(name)
    if not isinstance(field, models.Field):
        raise FieldError(f"{model.__name__}.{name} is a reverse relation, not a column.")
    return field


def column_of(field: models.Field[Any, Any]) -> str:
    """The column a concrete field is stored in (a many-to-many field has none)."""
    if field.column is None:
        raise FieldError(f"{field} is not stored in a column.")
    return field.column


def insert_parts(
    connection: BaseDatabaseWrapper,
    instance: models.Model,
    *,
    computed: Mapping[str, str] | None = None,
) -> tuple[str, str, list[Any]]:
    """``table (columns)``, the placeholders and the values that insert the new ``instance``.

    Every concrete field but the primary key, which the database assigns.
    ``computed`` maps field names to SQL expressions written in place of
    their values (say, the server's clock), constants of the caller's.
    """
    computed = computed or {}
    quote = connection.ops.quote_name
    meta = instance._meta
    fields = [field for field in meta.concrete_fields if not field.primary_key]
    columns = ", ".join(quote(column_of(field)) for field in fields)
    placeholders = ", ".join(computed.get(field.name, "%s") for field in fields)
    params = [
        field.get_db_prep_save(field.pre_save(instance, add=True), connection)
        for field in fields
        if field.name not in computed
    ]
    return f"{quote(meta.db_table)} ({columns})", placeholders, params


def mark_saved(instance: models.Model, *, pk: Any, db: str) -> None:
    """Make ``instance`` what ``save()`` would have left: its pk set, in ``db``."""
    instance.pk = pk
    instance._state.adding = False
    instance._state.db = db
