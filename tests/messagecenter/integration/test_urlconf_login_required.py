"""Every URL in the URLconf needs a session, except sign-in; nobody reaches another's data.

The tests walk ``django.urls.get_resolver()`` rather than a list kept by
hand, so a view added later is covered the day it is added: each pattern is
turned into a concrete URL with sample arguments for its converters, checked
to resolve back to that same pattern, then requested.

Without a session, every URL answers with a redirect to a sign-in page, except:

- the sign-in pages themselves (ours and the admin's);
- the ops dashboard and its metrics, which answer 404 to anyone but staff
  (or the metrics scraper's token): by design they do not reveal that they
  exist (dbtasks/ops/views.py);
- the page's live channel, which its own token authenticates (TOKEN below).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.shortcuts import resolve_url
from django.test import Client
from django.urls import LocalePrefixPattern
from django.urls import URLPattern
from django.urls import URLResolver
from django.urls import get_resolver
from django.urls import resolve
from django.urls import reverse
from django.urls.converters import IntConverter
from django.urls.converters import PathConverter
from django.urls.converters import SlugConverter
from django.urls.converters import StringConverter
from django.urls.converters import UUIDConverter
from django.urls.resolvers import RegexPattern
from django.urls.resolvers import RoutePattern

from dbtasks.models import DBTaskResult
from messagecenter.channels import Channel
from messagecenter.models import Notification
from messagecenter.sending import send
from messagecenter.tokens import encrypt

SEND = "messagecenter.tasks.send_notification"  # a notification's sends, not its report


pytestmark = pytest.mark.django_db

# Reachable without a session, and what they answer.
# (A GET with sample ids: a verification link that is not valid is a 400.)
OPEN = {
    "login": 200,
    "admin:login": 200,
    "sign-up": 200,
    "sign-up-done": 200,
    "verify-email": 400,
    "password_reset": 200,
    "password_reset_done": 200,
    "password_reset_confirm": 200,
    "password_reset_complete": 200,
}
# Reachable by staff (or a token) only; 404 for everyone else, signed in or not.
HIDDEN = {
    "dbtasks:ops",
    "dbtasks:ops-panels",
    "dbtasks:metrics",
    "dbtasks:queue-pause",
    "dbtasks:queue-resume",
}
# Authenticated by a signed token the page gives its script instead of the
# session (messagecenter/live_tokens.py): a poll then reads no session and
# no user. Without a valid token, 403 (the script reloads the page).
TOKEN = {"live": 403}

# Sample values per converter; {id} is replaced by the id under test.
CONVERTER_SAMPLES = {
    IntConverter: "{id}",
    StringConverter: "{id}",
    SlugConverter: "sample-slug",
    PathConverter: "{id}",
    UUIDConverter: "12345678-1234-5678-1234-567812345678",
}
# Tried in order against a regex pattern (the admin's app index and catch-all).
REGEX_SAMPLES = ["", "{id}/", "auth/", "messagecenter/", "dbtasks/", "sample/"]


@dataclass(frozen=True)
class Endpoint:
    name: str  # "namespace:name", or the view's dotted path for unnamed patterns
    url: str
    pattern: URLPattern


def route_sample(pattern: RoutePattern) -> str:
    def sample(match: re.Match[str]) -> str:
        converter = pattern.converters[match.group("name")]
        for kind, value in CONVERTER_SAMPLES.items():
            if type(converter) is kind:
                return value
        pytest.fail(f"No sample value for converter {converter!r} in {pattern}: add one.")

    return re.sub(r"<(?:(?P<converter>[^>:]+):)?(?P<name>[^>]+)>", sample, str(pattern))


def samples(pattern: RoutePattern | RegexPattern | LocalePrefixPattern) -> list[str]:
    """Paths this pattern matches (their ``{id}`` still to fill in)."""
    if isinstance(pattern, RoutePattern):
        return [route_sample(pattern)]
    found = [c for c in REGEX_SAMPLES if pattern.regex.match(c.format(id=1))]
    if not found:
        pytest.fail(f"No sample path for {pattern.regex.pattern!r}: add one to REGEX_SAMPLES.")
    return found


def walk(
    resolver: URLResolver, prefixes: tuple[str, ...] = ("",), namespace: str | None = None
) -> Iterator[tuple[str, list[str], URLPattern]]:
    """(name, candidate URLs, pattern) for every pattern under ``resolver``."""
    for entry in resolver.url_patterns:
        candidates = [prefix + path for prefix in prefixes for path in samples(entry.pattern)]
        if isinstance(entry, URLResolver):
            inner = namespace
            if entry.namespace:
                inner = f"{namespace}:{entry.namespace}" if namespace else entry.namespace
            yield from walk(entry, tuple(candidates), inner)
        else:
            name = entry.name or entry.lookup_str
            if namespace and entry.name:
                name = f"{namespace}:{entry.name}"
            yield name, ["/" + candidate for candidate in candidates], entry


def endpoints(object_id: int) -> list[Endpoint]:
    """Every URL of the URLconf, with ``object_id`` wherever a pattern takes an id."""
    found = []
    for name, candidates, pattern in walk(get_resolver()):
        for candidate in candidates:
            url = candidate.format(id=object_id)
            # The sample must reach this very pattern, not one declared before it.
            if resolve(urlsplit(url).path).func == pattern.callback:
                found.append(Endpoint(name, url, pattern))
                break
        else:
            pytest.fail(f"No sample URL reaches {name} ({pattern}); tried {candidates}.")
    return found


def is_sign_in_redirect(response) -> bool:
    if response.status_code != 302:
        return False
    logins = (resolve_url(settings.LOGIN_URL), reverse("admin:login"))
    return response["Location"].startswith(tuple(f"{login}?next=" for login in logins))


def test_the_walk_covers_the_urlconf():
    names = {endpoint.name for endpoint in endpoints(1)}
    # Our views, Django's sign-in, the admin, and dbtasks' operations pages.
    assert {
        "index",
        "live",
        "notification-attempts",
        "notification-retry",
        "login",
        "logout",
    } <= names
    assert {"admin:index", "admin:messagecenter_notification_changelist"} <= names
    assert names >= HIDDEN
    assert names >= set(OPEN)


@pytest.mark.parametrize("method", ["get", "post"])
def test_every_view_but_sign_in_needs_a_session(method):
    client = Client()
    failures = []
    for endpoint in endpoints(1):
        response = getattr(client, method)(endpoint.url)
        if endpoint.name in OPEN:
            # A POST shows the form again (200), or is not allowed (405).
            ok = response.status_code == OPEN[endpoint.name] or (
                method == "post" and response.status_code in {200, 405}
            )
        elif endpoint.name in HIDDEN:
            ok = response.status_code == 404
        elif endpoint.name in TOKEN:
            # A POST is not allowed (405) before the token is looked at.
            ok = response.status_code == TOKEN[endpoint.name] or (
                method == "post" and response.status_code == 405
            )
        else:
            ok = is_sign_in_redirect(response)
        if not ok:
            failures.append(f"{method.upper()} {endpoint.url} ({endpoint.name}): {response}")
    assert not failures, "\n".join(failures)


def test_the_hidden_pages_stay_hidden_from_signed_in_users(django_user_model):
    client = Client()
    client.force_login(django_user_model.objects.create_user("bob", password="pw-bob-0123"))
    for endpoint in endpoints(1):
        if endpoint.name in HIDDEN:
            assert client.get(endpoint.url).status_code == 404, endpoint.url


SECRET = "alice-secret-7f3a"  # nothing in it that HTML escaping would change


def test_one_user_reaches_nothing_of_anothers(django_user_model):
    """Bob requests every URL with Alice's ids: none shows, changes or retries anything of hers."""
    alice = django_user_model.objects.create_user("alice", password="pw-alice-0123")
    bob = django_user_model.objects.create_user("bob", password="pw-bob-0123")
    notification = Notification.objects.create(owner=alice, message=SECRET, title=SECRET)
    send(notification)
    channel = Channel.objects.create(
        owner=alice, name=SECRET, topic="alices-topic", token_encrypted=encrypt(SECRET)
    )
    # So that a retry, were it allowed, would run.
    DBTaskResult.objects.filter(task_path=SEND).update(status="FAILED")
    task_result_id = notification.task_result_id

    # Views that take the id of something a user owns: Alice's id is a 404
    # for Bob. (Other ids may be Bob's own: his posts here make some.)
    owned = {
        "notification-attempts": notification.pk,
        "notification-retry": notification.pk,
        "notification-cancel": notification.pk,
        "channel-detail": channel.pk,
        "channel-delete": channel.pk,
        "channel-test": channel.pk,
    }
    client = Client()
    failures = []
    for object_id in {notification.pk, alice.pk, channel.pk}:
        for endpoint in endpoints(object_id):
            for method in ("get", "post"):
                client.force_login(bob)  # again: logout/ signs him out
                response = getattr(client, method)(endpoint.url, {"message": "x", "priority": "3"})
                content = b"".join(response) if response.streaming else response.content
                if SECRET.encode() in content or b"alices-topic" in content:
                    failures.append(f"{method.upper()} {endpoint.url} shows Alice's data")
                # 404 as for an id that does not exist (405 for the wrong method,
                # checked first, the same for every id).
                if owned.get(endpoint.name) == object_id and (
                    response.status_code not in {404, 405}
                ):
                    failures.append(f"{method.upper()} {endpoint.url}: {response.status_code}")

    assert not failures, "\n".join(failures)
    notification.refresh_from_db()
    assert (notification.owner, notification.task_result_id) == (alice, task_result_id)
    # Her channel is untouched, and no test notification was sent to it.
    assert Channel.objects.filter(owner=alice, name=SECRET).get() == channel
    assert Channel.objects.get(pk=channel.pk).token == SECRET
    assert not Notification.objects.filter(channel=channel).exists()
    # Nothing was enqueued again for her notification.
    assert [
        row.args
        for row in DBTaskResult.objects.filter(task_path=SEND)
        if row.args[0] == notification.pk
    ] == [[notification.pk, notification.destinations.get().channel_id]]
