"""A form posted twice (a double click, a resent request) sends its notification once."""

from __future__ import annotations

import uuid

from messagecenter.models import Notification
from tests.conftest import run_worker
from tests.html import parse


def test_the_form_carries_a_fresh_token(signed_in, db):
    first = parse(signed_in.get("/").content.decode()).find("#id_idempotency_key")
    second = parse(signed_in.get("/").content.decode()).find("#id_idempotency_key")

    assert first.attrs["type"] == "hidden"
    assert uuid.UUID(first.attrs["value"]) != uuid.UUID(second.attrs["value"])


def test_the_same_form_posted_twice_sends_once(signed_in, ntfy, transactional_db):
    data = {"message": "once", "priority": "3", "idempotency_key": str(uuid.uuid4())}

    signed_in.post("/", data)
    signed_in.post("/", data, headers={"HX-Request": "true"})
    run_worker()

    assert Notification.objects.count() == 1
    assert len(ntfy.requests) == 1


def test_two_forms_with_the_same_text_send_twice(signed_in, ntfy, transactional_db):
    for _ in range(2):
        signed_in.post(
            "/", {"message": "twice", "priority": "3", "idempotency_key": str(uuid.uuid4())}
        )
    run_worker()

    assert Notification.objects.count() == 2
    assert len(ntfy.requests) == 2


def test_a_post_without_a_token_is_sent_as_before(signed_in, ntfy, transactional_db):
    signed_in.post("/", {"message": "no token", "priority": "3"})
    signed_in.post("/", {"message": "no token", "priority": "3"})
    run_worker()

    assert len(ntfy.requests) == 2
