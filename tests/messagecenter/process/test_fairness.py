"""One user floods 200 notifications; another's single one still goes out at once.

A real worker process (one thread, as the Procfile runs it) delivers to the
stand-in ntfy. Everything is enqueued through the app's own path
(``sending.send``), so the per-user limit of settings.TASKS
applies. Bob sends while the worker is busy with Alice's backlog. The
assertion is about order, not time: Bob's notification reaches ntfy before
the 50th of Alice's that follow it, with most of her backlog still waiting.
The delay is printed (``pytest -s``) and recorded in docs/reliability.md.
"""

from __future__ import annotations

import pytest
from django.db import connection
from django.db import transaction

from dbtasks.models import DBTaskResult
from messagecenter.channels import default_channel
from messagecenter.models import Notification
from messagecenter.sending import send
from tests.deliveries import send_id
from tests.live import wait_until

pytestmark = [pytest.mark.process, pytest.mark.slow]

# Enough that most of it still waits when Bob sends (the order, which is
# what is tested, does not depend on the size; 2,000 took minutes to enqueue
# on a loaded machine: 21 statements each).
FLOOD = 200
# Bob's must arrive before this many more of Alice's (with 2 per user and
# one worker thread, it arrives after about 2).
WITHIN = 50
# Bob sends once the worker is this far into Alice's backlog.
BUSY_AFTER = 20


def enqueue(owner, message: str, priority: int) -> Notification:
    notification = Notification.objects.create(
        owner=owner, message=message, priority=priority, channel=default_channel(owner)
    )
    send(notification)
    return notification


def topics(ntfy) -> list[str]:
    return [request.published.get("topic", "") for request in ntfy.requests]


@pytest.mark.parametrize(
    "flood_priority",
    [Notification.Priority.DEFAULT, Notification.Priority.URGENT],
    ids=["default", "urgent"],
)
def test_a_flood_does_not_hold_up_another_users_message(
    start_worker, ntfy, django_user_model, flood_priority
):
    alice = django_user_model.objects.create_user("alice")
    bob = django_user_model.objects.create_user("bob")
    bob_topic = default_channel(bob).topic
    with transaction.atomic():
        for number in range(FLOOD):
            enqueue(alice, f"flood {number}", flood_priority)
    # Empty server_url: the worker's default server, from NTFY_URL.
    worker = start_worker(log_level="WARNING", env={"NTFY_URL": ntfy.topic_url})
    wait_until(
        lambda: len(ntfy.requests) >= BUSY_AFTER,
        timeout=120,
        what="the worker to work through alice's backlog",
        details=worker.describe,
    )

    sent_before = len(ntfy.requests)
    bobs = enqueue(bob, "hello from bob", Notification.Priority.DEFAULT)

    def delivered_to_bob() -> list[str] | None:
        seen = topics(ntfy)
        return seen if bob_topic in seen else None

    seen = wait_until(
        delivered_to_bob,
        timeout=120,
        what="bob's notification to reach ntfy",
        details=worker.describe,
    )

    alices_in_between = seen.index(bob_topic) - sent_before
    assert alices_in_between < WITHIN
    assert seen.index(bob_topic) < FLOOD // 2  # most of alice's backlog still waits
    finished = DBTaskResult.objects.filter(pk=send_id(bobs), finished_at__isnull=False)
    row = wait_until(finished.first, timeout=30, what="bob's result to be recorded")
    assert row.finished_at is not None
    delay = (row.finished_at - row.enqueued_at).total_seconds()
    print(  # noqa: T201 - the figures docs/reliability.md quotes
        f"\n{connection.vendor}, {flood_priority.label} flood of {FLOOD}: bob's delivered after "
        f"{alices_in_between} more of alice's, {delay:.2f} s after it was enqueued"
    )
