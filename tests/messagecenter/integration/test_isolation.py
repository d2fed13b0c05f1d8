"""One user never sees, polls or retries another's notifications: their ids answer 404.

The live channel is authenticated by a token instead of the session
(messagecenter/live_tokens.py); the tests at the end check that one cannot be
forged, stretched or kept past a sign-out.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
import time_machine
from django.conf import settings
from django.core import signing
from django.test import Client
from django.test import override_settings
from django.utils import timezone

from dbtasks.models import DBTaskResult
from messagecenter import live_tokens
from messagecenter.models import Notification
from messagecenter.sending import send
from tests.html import parse
from tests.messagecenter.conftest import HTMX
from tests.messagecenter.conftest import live_token

SEND = "messagecenter.tasks.send_notification"  # a notification's sends, not its report


@pytest.fixture
def alices_notification(alice):
    notification = Notification.objects.create(owner=alice, message="Alice secret plan")
    send(notification)
    return notification


@pytest.fixture
def as_bob(client, bob):
    client.force_login(bob)
    client.defaults.update(live_token(bob))  # the poll's token, as his page has it
    return client


def test_list_shows_only_your_own(as_bob, bob, alices_notification):
    bobs = Notification.objects.create(owner=bob, message="Bob note")
    send(bobs)

    response = as_bob.get("/")
    rows = parse(response.content).find_all("li.notification")
    assert [row.attrs["id"] for row in rows] == [f"notification-{bobs.pk}"]
    assert "Alice secret plan" not in response.content.decode()
    assert "1 in total" in response.content.decode()


@pytest.mark.parametrize("headers", [{}, HTMX], ids=["plain", "htmx"])
def test_polling_someone_elses_notification_tells_nothing(as_bob, alices_notification, headers):
    n = alices_notification
    for seen in (f"{n.pk}.", f"{n.pk}.{n.task_result_id}:READY:0", f"{n.pk}.x:FAILED:9"):
        response = as_bob.get("/notifications/live/", {"seen": seen}, **headers)
        assert response.status_code == 204
        assert b"secret" not in response.content
    response = as_bob.get(f"/notifications/{n.pk}/attempts/", **headers)
    assert response.status_code == 404
    assert b"secret" not in response.content


@pytest.mark.parametrize("headers", [{}, HTMX], ids=["plain", "htmx"])
def test_retrying_someone_elses_notification_is_404(as_bob, alices_notification, headers):
    before = alices_notification.task_result_id
    response = as_bob.post(f"/notifications/{alices_notification.pk}/retry/", **headers)
    assert response.status_code == 404
    alices_notification.refresh_from_db()
    assert alices_notification.task_result_id == before
    assert DBTaskResult.objects.filter(task_path=SEND).count() == 1


def test_someone_elses_id_and_a_missing_id_look_the_same(as_bob, alices_notification):
    # 404 for both, never 403: an id that is not yours does not exist for you.
    missing = alices_notification.pk + 1000
    for pk in (alices_notification.pk, missing):
        assert as_bob.get(f"/notifications/{pk}/attempts/").status_code == 404
        assert as_bob.post(f"/notifications/{pk}/retry/").status_code == 404


def test_posting_cannot_choose_the_owner(as_bob, bob, alice):
    as_bob.post("/", {"message": "hi", "priority": "3", "owner": alice.pk})
    assert Notification.objects.get().owner == bob


def test_owner_still_sees_their_own(client, alice, alices_notification):
    client.force_login(alice)
    url = f"/notifications/{alices_notification.pk}/attempts/"
    assert client.get(url).status_code == 200
    assert "Alice secret plan" in client.get("/").content.decode()


# --- The live channel's token --------------------------------------------------


def poll(client, notification, token_headers):
    seen = f"{notification.pk}.{notification.task_result_id}:RUNNING:1"  # so it differs
    return client.get("/notifications/live/", {"seen": seen}, **HTMX, **token_headers)


def test_the_token_alone_reads_its_users_rows(client, alice, alices_notification):
    # No session cookie at all: the token is the credential.
    response = poll(client, alices_notification, live_token(alice))
    assert response.status_code == 200
    assert b"notification-" in response.content


def test_a_tampered_or_foreign_token_is_refused(client, alice, bob, alices_notification):
    bobs = live_token(bob)["HTTP_X_LIVE_TOKEN"]
    claims = signing.loads(bobs, salt=live_tokens.SALT)
    # Bob's own token with Alice's id in it: the signature no longer matches.
    payload, _, rest = bobs.partition(":")
    forged = signing.b64_encode(
        json.dumps({**claims, "u": alice.pk}, separators=(",", ":")).encode()
    ).decode()
    # Signed by this site, but for another purpose (another salt).
    other_salt = signing.dumps({**claims, "u": alice.pk}, salt="messagecenter.other")
    for token in [f"{forged}:{rest}", other_salt, "garbage", "", "x" * 600, bobs + "x"]:
        response = poll(client, alices_notification, {"HTTP_X_LIVE_TOKEN": token})
        assert response.status_code == 403, token
        assert b"secret" not in response.content
    assert payload != forged


def test_a_token_expires(client, alice, alices_notification):
    headers = live_token(alice)
    assert poll(client, alices_notification, headers).status_code == 200
    later = timezone.now() + live_tokens.MAX_AGE + timedelta(seconds=1)
    with time_machine.travel(later, tick=False):
        assert poll(client, alices_notification, headers).status_code == 403


def test_a_new_secret_key_voids_tokens_even_once_verified(rf, alice):
    """Each process remembers the tokens it verified, by token and signing keys."""
    request = rf.get("/notifications/live/", **live_token(alice))
    assert live_tokens.read(request) is not None  # verified, and remembered

    with override_settings(SECRET_KEY="another-secret-key-" + "x" * 40):
        assert live_tokens.read(request) is None
    assert live_tokens.read(request) is not None


def test_a_rotated_secret_key_keeps_open_pages_live(client, alice, alices_notification):
    """The old key in SECRET_KEY_FALLBACKS: its tokens still verify, and their password
    digest (made with the old key) still matches."""
    headers = live_token(alice)
    old = settings.SECRET_KEY
    rotated = "another-secret-key-" + "x" * 40
    with override_settings(SECRET_KEY=rotated, SECRET_KEY_FALLBACKS=[old]):
        assert poll(client, alices_notification, headers).status_code == 200
        alice.set_password("another-pw-0123")
        alice.save()
        assert poll(client, alices_notification, headers).status_code == 403


def test_signing_out_voids_every_token_issued_before(client, alice, alices_notification):
    client.force_login(alice)
    page = parse(client.get("/").content)
    headers = {"HTTP_X_LIVE_TOKEN": page.find("#notifications").attrs["data-live-token"]}
    assert poll(Client(), alices_notification, headers).status_code == 200

    client.post("/accounts/logout/")
    assert poll(Client(), alices_notification, headers).status_code == 403

    # Signed in again, the page gives a token that works.
    client.force_login(alice)
    page = parse(client.get("/").content)
    fresh = {"HTTP_X_LIVE_TOKEN": page.find("#notifications").attrs["data-live-token"]}
    assert poll(Client(), alices_notification, fresh).status_code == 200


def test_a_password_change_or_deactivation_voids_the_token(client, alice, alices_notification):
    headers = live_token(alice)
    alice.set_password("another-pw-0123")
    alice.save()
    assert poll(client, alices_notification, headers).status_code == 403

    headers = live_token(alice)
    assert poll(client, alices_notification, headers).status_code == 200
    alice.is_active = False
    alice.save()
    assert poll(client, alices_notification, headers).status_code == 403
    # Also when none of the rows asked about is theirs (the token is checked apart).
    response = client.get("/notifications/live/", {"seen": "999999.x"}, **headers)
    assert response.status_code == 403


def test_a_deleted_users_token_is_refused(client, alice, alices_notification):
    headers = live_token(alice)
    alice.delete()
    assert client.get("/notifications/live/", {"seen": "1.x"}, **headers).status_code == 403
