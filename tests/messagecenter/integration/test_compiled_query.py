"""CompiledQuery answers as the queryset it was compiled from, with other ids swapped in."""

from __future__ import annotations

import pytest
from django.db import connection

from messagecenter.compiled import CompiledQuery
from messagecenter.models import Notification

pytestmark = pytest.mark.django_db


def build(values: list[int]):
    # Constants of every kind beside the ids: text with a percent sign and
    # quotes, a pattern, a number, so that inlining them (Postgres) is tested.
    return (
        Notification.objects.filter(owner_id=values[0], pk__in=values[1:])
        .exclude(message="50% 'off'")
        .filter(message__regex=r"\A[a-z0-9 %']+\Z", priority__gte=1)
        .order_by("pk")
        .values("pk", "message", "created_at")
    )


def test_rows_are_the_querysets_for_any_ids(django_user_model):
    alice = django_user_model.objects.create_user("alice")
    bob = django_user_model.objects.create_user("bob")
    mine = [
        Notification.objects.create(owner=alice, message=text)
        for text in ("hello", "50% 'off'", "100% 'on'", "Capital")
    ]
    theirs = Notification.objects.create(owner=bob, message="hello")
    compiled = CompiledQuery(build)

    for values in (
        [alice.pk, *(n.pk for n in mine)],
        [alice.pk, mine[2].pk, theirs.pk],
        [bob.pk, theirs.pk, mine[0].pk],
    ):
        rows = compiled.rows(values, using="default")
        assert rows == list(build(values)), values
    assert [
        row["message"] for row in compiled.rows([alice.pk, *(n.pk for n in mine)], using="default")
    ] == ["hello", "100% 'on'"]


def test_only_the_ids_are_parameters_on_postgres():
    if connection.vendor != "postgresql":
        pytest.skip("client-side binding's parse cache is psycopg's (Postgres)")
    compiled = CompiledQuery(build)
    compiled.rows([1, 2, 3], using="default")
    ((_, entry),) = compiled._compiled.items()
    assert len(entry.params) == 3  # psycopg caches a split query of at most 50
