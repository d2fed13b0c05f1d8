"""Hostile input wherever a user can type: never a 500, never rendered unescaped, never altered.

Property-based (hypothesis): the form, every URL, the query strings and the
htmx headers get arbitrary text, control characters, markup and scripts,
invalid UTF-8 and malformed ids. Whatever comes in:

- the answer is never a server error (the test client re-raises one);
- what is stored is what was typed (less Django's usual trimming of
  surrounding whitespace and the browser's CRLF line breaks), and it is
  delivered to ntfy exactly as stored;
- every page and partial that shows it escapes it: no element, attribute or
  script of the input's making reaches the HTML.

CSRF protection is enforced on every state-changing endpoint, and the sign-in
page's ``next`` never sends anyone off-site.

Runs are deterministic (``derandomize``, no example database) and bounded
(``max_examples``). Each example runs in a savepoint that is rolled back, so
examples never see one another's rows.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from urllib.parse import quote
from urllib.parse import urlencode
from urllib.parse import urljoin
from urllib.parse import urlsplit

import pytest
from django.db import transaction
from django.test import Client
from django.utils import timezone
from django.utils.html import escape
from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from messagecenter.channels import Channel
from messagecenter.models import Notification
from messagecenter.sending import send
from messagecenter.tasks import send_notification
from tests.html import Element
from tests.html import parse
from tests.messagecenter.conftest import HTMX
from tests.messagecenter.conftest import PASSWORD

pytestmark = pytest.mark.django_db


# Deterministic and bounded: the same examples on every run, a few seconds each.
bounded = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# What people paste, on purpose or not.
NASTY = [
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "'><svg onload=alert(1)>",
    "</textarea><script>alert(document.cookie)</script>",
    "</li></ol><iframe src=//evil.example></iframe>",
    "<a href=javascript:alert(1)>click</a>",
    '<div style="background:url(javascript:alert(1))">',
    "<!-- unterminated comment",
    "]]><![CDATA[",
    "{{ request.user.password }}{% debug %}",
    "${jndi:ldap://evil.example/a}",
    "' OR 1=1; DROP TABLE messagecenter_notification; --",
    "&lt;b&gt; &amp; &#x27; &#0;",
    "javascript:alert(1)",
    "\x00",
    "\x1b[31mred\x1b[0m",
    "\u202egnp.exe",
    "\ufeffBOM",
    "a\u200db",
    "\r\n\r\nSet-Cookie: x=1",
    "\t\v\f",
    "\u2028\u2029",
    "\x85",
    "Z̴̡̛͔a̷l̸g̵o̶",
    "👩‍👩‍👧‍👦 🇺🇦 🏳️‍🌈",
    "\U0010ffff\ue000",
    "%00%ff%c0%af",
    "..\\..\\windows\\win.ini",
    "../../../../etc/passwd",
    "A" * 5000,
    "😀" * 1100,  # 4,400 bytes: over ntfy's 4,096
]

hostile_text = st.one_of(
    st.sampled_from(NASTY),
    st.text(max_size=120),
    st.text(
        st.characters(categories=["Cc", "Cf", "Zl", "Zp", "Zs", "Mn", "Co"]),
        max_size=30,
    ),
    st.lists(st.one_of(st.sampled_from(NASTY), st.text(max_size=10)), max_size=4).map("".join),
)


def valid_delivery_time(minutes: int) -> str:
    return (timezone.localtime() + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M")


def could_be_valid_message(text: str) -> bool:
    stripped = text.strip()
    return bool(stripped) and "\x00" not in text and len(stripped.encode()) <= 4096


def could_be_valid_title(text: str) -> bool:
    return len(text) <= 250 and not any(
        unicodedata.category(char) in {"Cc", "Zl", "Zp"} for char in text
    )


# Mostly hostile text that the form accepts (so it is stored, shown and
# delivered), and some that it refuses (so it comes back in the form).
acceptable_form_data = st.fixed_dictionaries(
    {
        "message": hostile_text.filter(could_be_valid_message),
        "priority": st.sampled_from(["1", "2", "3", "4", "5"]),
    },
    optional={
        "title": hostile_text.filter(could_be_valid_title),
        "tags": st.lists(
            hostile_text.filter(lambda t: "," not in t and could_be_valid_title(t[:50])).map(
                lambda t: t[:50]
            ),
            max_size=5,
        ).map(", ".join),
        "time_zone": st.sampled_from(["Europe/Paris", "Etc/GMT+12", "America", "../etc"]),
        "owner": st.just("1"),
        "task_result_id": hostile_text,
    },
)

any_form_data = st.fixed_dictionaries(
    {
        "message": hostile_text,
        "priority": st.one_of(st.sampled_from(["1", "2", "3", "4", "5"]), hostile_text),
    },
    optional={
        "title": hostile_text,
        "tags": st.one_of(
            st.lists(hostile_text, max_size=6).map(", ".join),
            hostile_text,
        ),
        "deliver_at": st.one_of(
            st.integers(min_value=2, max_value=9000).map(valid_delivery_time),
            hostile_text,
        ),
        "time_zone": st.one_of(
            st.sampled_from(["Europe/Paris", "Pacific/Kiritimati", "Etc/GMT+12", "America"]),
            hostile_text,
        ),
        # Fields the form does not have: they must change nothing.
        "owner": st.just("1"),
        "task_result_id": hostile_text,
        "created_at": hostile_text,
    },
)

# Header values arrive as Latin-1 text (WSGI decodes the raw bytes that way).
header_text = st.one_of(
    st.sampled_from(NASTY[:14]),
    st.text(st.characters(max_codepoint=255, exclude_characters="\r\n"), max_size=80),
)

# Invalid UTF-8 and other raw bytes, percent-encoded as a browser would send them.
raw_bytes = st.one_of(
    st.binary(max_size=40),
    st.sampled_from([b"\xff\xfe", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\x80"]),
)


def percent_encoded(data: bytes) -> str:
    return "".join(f"%{byte:02X}" for byte in data)


# --- Fixtures and helpers ------------------------------------------------------------


@contextmanager
def rolled_back() -> Iterator[None]:
    """Run one example in a savepoint that is rolled back: examples stay independent."""
    with transaction.atomic():
        yield
        transaction.set_rollback(True)


# Elements and attributes that hostile text would create if it were not escaped.
INJECTED_TAGS = frozenset(
    {"script", "img", "svg", "iframe", "object", "embed", "style", "base", "math", "frame"}
)


def assert_no_markup_injected(html: bytes | str, *texts: str) -> Element:
    """Check that the HTML escapes ``texts`` and holds nothing of their making."""
    page = parse(html)
    elements = list(walk(page))
    for element in elements:
        if element.tag == "script":
            # Only the site's own static scripts.
            assert (element.attrs.get("src") or "").startswith("/static/"), element.attrs
            assert not "".join(element.parts).strip()
        else:
            assert element.tag not in INJECTED_TAGS, element
        handlers = [name for name in element.attrs if name.startswith("on")]
        assert not handlers, element
        assert "javascript:" not in (element.attrs.get("href") or "").lower()
    text = html.decode() if isinstance(html, bytes) else html
    for typed in texts:
        if typed:
            assert escape(typed) in text
    return page


def walk(element: Element) -> Iterator[Element]:
    for child in element.children:
        yield child
        yield from walk(child)


def expected_publish(notification: Notification) -> dict:
    """What ntfy must receive for this notification: exactly what is stored."""
    published = {
        "topic": notification.channel.topic if notification.channel else "",
        "message": notification.message,
        "priority": notification.priority,
    }
    if notification.title:
        published["title"] = notification.title
    if notification.tags:
        published["tags"] = notification.tags
    return published


# --- The form ------------------------------------------------------------------------


@settings(bounded, max_examples=100)
@given(data=st.one_of(acceptable_form_data, any_form_data), htmx=st.booleans())
def test_the_form_stores_delivers_and_shows_exactly_what_was_typed(
    signed_in, alice, ntfy, data, htmx
):
    with rolled_back():
        before = set(Notification.objects.values_list("pk", flat=True))
        response = signed_in.post("/", data, **(HTMX if htmx else {}))

        created = Notification.objects.exclude(pk__in=before)
        if response.status_code == 422:
            assert not created.exists()
            # The form comes back with what was typed, escaped.
            assert_no_markup_injected(response.content)
            return
        assert response.status_code == (200 if htmx else 302), response.content[:500]
        notification = created.get()
        assert notification.owner == alice
        assert notification.message == data["message"].strip().replace("\r\n", "\n")
        assert notification.title == data.get("title", "").strip()
        assert notification.task_result_id.isdigit()  # the enqueued task's, not the input's
        if htmx:
            assert_no_markup_injected(response.content, str(notification))

        page = signed_in.get("/")
        assert page.status_code == 200
        shown = [notification.message, notification.title, *notification.tags]
        assert_no_markup_injected(page.content, *shown).find(f"#notification-{notification.pk}")

        send_notification.call(notification.pk)
        received = ntfy.requests[-1]
        assert received.json == expected_publish(notification)
        assert received.json["message"].encode() == notification.message.encode()


# What the channels field may be sent instead of some of one's own channel ids.
hostile_channel_id = st.one_of(
    hostile_text,
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.sampled_from(["", "0", "-1", "1e3", "1.0", "0x10", " 1", "None", "[]", "{}"]),
)


@bounded
@given(ids=st.lists(hostile_channel_id, min_size=1, max_size=12), htmx=st.booleans())
def test_the_channels_field_takes_only_ones_own_channels(signed_in, alice, bob, ids, htmx):
    with rolled_back():
        own = Channel.objects.create(owner=alice, name="Mine", topic="mine")
        bobs = Channel.objects.create(owner=bob, name="Bob's", topic="bobs")
        before = set(Notification.objects.values_list("pk", flat=True))
        data = {"message": "Hi", "priority": "3", "channels": [str(own.pk), str(bobs.pk), *ids]}
        response = signed_in.post("/", data, **(HTMX if htmx else {}))
        # Bob's id among them: never sent, to his channel or anyone's.
        assert response.status_code == 422
        assert not Notification.objects.exclude(pk__in=before).exists()
        assert_no_markup_injected(response.content)


@bounded
@given(payload=raw_bytes, field=st.sampled_from(["message", "title", "tags", "priority"]))
def test_invalid_utf8_in_the_form_is_never_a_server_error(signed_in, ntfy, payload, field):
    with rolled_back():
        before = set(Notification.objects.values_list("pk", flat=True))
        body = f"message=hello&priority=3&{field}={percent_encoded(payload)}"
        response = signed_in.generic(
            "POST", "/", body, content_type="application/x-www-form-urlencoded"
        )
        assert response.status_code in {302, 422}
        created = Notification.objects.exclude(pk__in=before).first()
        if created is not None:
            # Django decoded the bytes (invalid ones as U+FFFD): shown and delivered as stored.
            assert_no_markup_injected(signed_in.get("/").content, created.message)
            send_notification.call(created.pk)
            assert ntfy.requests[-1].json == expected_publish(created)


@bounded
@given(
    body=st.binary(max_size=300),
    content_type=st.sampled_from(
        [
            "multipart/form-data; boundary=xyz",
            "multipart/form-data",
            "application/x-www-form-urlencoded",
            "application/json",
            "text/plain; charset=utf-16",
            "application/x-www-form-urlencoded; charset=no-such-charset",
        ]
    ),
)
def test_malformed_bodies_are_refused_cleanly(signed_in, body, content_type):
    with rolled_back():
        response = signed_in.generic("POST", "/", body, content_type=content_type)
        # 400 for a body Django cannot parse, 422 for a form without a message.
        assert response.status_code in {302, 400, 422}, response.content[:300]


@pytest.mark.parametrize(
    ("body", "status"),
    [
        # Over MAX_REQUEST_BODY_BYTES (1 MiB): 413 before anything reads the body.
        pytest.param("message=" + "A" * 3_000_000 + "&priority=3", 413, id="3MB-field"),
        # Over DATA_UPLOAD_MAX_NUMBER_FIELDS (1,000).
        pytest.param("&".join(f"f{n}=x" for n in range(2000)), 400, id="2000-fields"),
        # Within Django's limits, over ntfy's: the form says so.
        pytest.param("message=" + "A" * 500_000 + "&priority=3", 422, id="500kB-message"),
        pytest.param("message=x&priority=3&title=" + "T" * 100_000, 422, id="100kB-title"),
        pytest.param("message=x&priority=3&tags=" + ",".join(["t"] * 10_000), 422, id="10k-tags"),
    ],
)
def test_huge_bodies_are_refused_cleanly(signed_in, body, status):
    response = signed_in.generic(
        "POST", "/", body, content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == status
    assert not Notification.objects.exists()


# --- Every URL -----------------------------------------------------------------------

# Every route, with a slot for arbitrary text: path segments (ids), query strings.
URL_SHAPES = [
    "/{text}",
    "/?page={text}",
    "/?{text}={text}",
    "/notifications/{text}/attempts/",
    "/notifications/live/?seen={text}",
    "/notifications/live/?seen={pk}.{text}&seen={text}.{pk}",
    "/notifications/{text}/retry/",
    "/accounts/login/?next={text}",
    "/accounts/{text}/",
    "/admin/{text}",
    "/admin/auth/user/{text}/change/",
    "/ops/{text}",
    "/ops/?backend={text}",
    "/ops/metrics/?{text}",
    "/static/{text}",
    "/channels/{text}/",
    "/channels/{text}/delete/",
    "/channels/{text}/test/",
    "/accounts/verify/{text}/{text}/",
    "/accounts/reset/{text}/{text}/",
    "/accounts/sign-up/?{text}={text}",
]


@bounded
@given(
    shape=st.sampled_from(URL_SHAPES),
    text=st.one_of(hostile_text.map(lambda t: quote(t, safe="")), raw_bytes.map(percent_encoded)),
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"]),
    htmx_header=header_text,
    current_url=header_text,
)
def test_every_url_answers_without_a_server_error(
    signed_in, alice, shape, text, method, htmx_header, current_url
):
    with rolled_back():
        notification = Notification.objects.create(owner=alice, message="Mine")
        send(notification)
        url = shape.format(text=text, pk=notification.pk)
        response = signed_in.generic(
            method,
            url,
            HTTP_HX_REQUEST=htmx_header,
            HTTP_HX_CURRENT_URL=current_url,
            HTTP_HX_TARGET=htmx_header,
        )
        assert response.status_code < 500, (url, response.status_code)
        if response.get("Content-Type", "").startswith("text/html") and method != "HEAD":
            assert_no_markup_injected(response.content)


@bounded
@given(host=header_text, forwarded=header_text)
def test_a_hostile_host_header_is_a_400_not_a_500(signed_in, host, forwarded):
    response = signed_in.get("/", HTTP_HOST=host, HTTP_X_FORWARDED_PROTO=forwarded)
    if host.strip() not in {"testserver", "localhost", "127.0.0.1"}:
        assert response.status_code == 400
    assert response.status_code < 500


# --- The sign-in page ------------------------------------------------------------------

OFF_SITE = [
    "https://evil.example/",
    "//evil.example/",
    "///evil.example/",
    "////evil.example",
    "\\\\evil.example",
    "/\\evil.example",
    "\\/evil.example",
    "/\t/evil.example",
    "\t//evil.example",
    " //evil.example",
    "http:evil.example",
    "https:/evil.example",
    "http://testserver@evil.example/",
    "http://evil.example\\@testserver/",
    "javascript:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "//evil.example%2f@testserver",
    "%2F%2Fevil.example",
    "\x00//evil.example",
    "/%09/evil.example",
    "https://testserver.evil.example/",
    "http://[::1]/",
    "http://localhost:8000/",
]


def lands_on(location: str) -> tuple[str, str]:
    """(scheme, host) where a browser goes for this Location, read as browsers read it.

    WHATWG URL parsing strips leading and trailing C0 controls and spaces,
    drops tabs and newlines anywhere, and treats a backslash as a slash.
    """
    cleaned = re.sub(r"[\t\n\r]", "", location.strip("".join(map(chr, range(33)))))
    cleaned = cleaned.replace("\\", "/")
    target = urlsplit(urljoin("http://testserver/accounts/login/", cleaned))
    return target.scheme, target.hostname or ""


@bounded
@given(next_url=st.one_of(st.sampled_from(OFF_SITE), hostile_text))
def test_signing_in_never_redirects_off_site(alice, next_url):
    client = Client()
    with rolled_back():  # each example starts with no sign-in attempts counted
        response = client.post(
            "/accounts/login/", {"username": "alice", "password": PASSWORD, "next": next_url}
        )
    assert response.status_code == 302
    assert lands_on(response["Location"]) == ("http", "testserver"), response["Location"]


@bounded
@given(next_url=st.one_of(st.sampled_from(OFF_SITE), hostile_text))
def test_the_sign_in_page_escapes_next(next_url):
    response = Client().get("/accounts/login/?" + urlencode({"next": next_url}))
    assert response.status_code == 200
    assert_no_markup_injected(response.content)


@bounded
@given(username=hostile_text, password=hostile_text)
def test_sign_in_with_hostile_credentials_is_refused_cleanly(alice, username, password):
    with rolled_back():  # each example starts with no failures counted
        response = Client().post("/accounts/login/", {"username": username, "password": password})
    assert response.status_code == 200  # the form again, with its error
    assert_no_markup_injected(response.content, username.strip())
    assert "_auth_user_id" not in response.wsgi_request.session


# --- CSRF ------------------------------------------------------------------------------


@pytest.fixture
def strict(alice):
    """A signed-in browser whose POSTs must carry the CSRF token, as in production."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    return client


def csrf_token_of(client: Client) -> str:
    """The token a page hands out: in the form, in htmx's headers, and in the cookie."""
    page = parse(client.get("/").content)
    field = next(i for i in page.find_all("input") if i.attrs.get("name") == "csrfmiddlewaretoken")
    body = page.find("body")
    token = field.attrs["value"]
    assert token
    assert token in (body.attrs["hx-headers"] or "")
    return token


def test_posting_without_the_token_is_refused(strict, alice):
    notification = Notification.objects.create(owner=alice, message="Mine")
    send(notification)
    for url in ("/", f"/notifications/{notification.pk}/retry/", "/accounts/logout/"):
        for headers in ({}, HTMX, {"HTTP_X_CSRFTOKEN": "x" * 64}):
            response = strict.post(url, {"message": "Hi", "priority": "3"}, **headers)
            assert response.status_code == 403, url
    assert Notification.objects.count() == 1


def test_the_token_from_the_page_is_accepted_from_the_form_and_from_htmx(strict):
    token = csrf_token_of(strict)
    form = strict.post("/", {"message": "Hi", "priority": "3", "csrfmiddlewaretoken": token})
    assert form.status_code == 302
    htmx = strict.post("/", {"message": "Hi", "priority": "3"}, HTTP_X_CSRFTOKEN=token, **HTMX)
    assert htmx.status_code == 200
    assert Notification.objects.count() == 2


def test_signing_in_needs_the_token_too(alice):
    client = Client(enforce_csrf_checks=True)
    response = client.post("/accounts/login/", {"username": "alice", "password": PASSWORD})
    assert response.status_code == 403
    assert "_auth_user_id" not in client.session


# --- The channel and account forms -------------------------------------------------

channel_form_data = st.fixed_dictionaries(
    {"name": hostile_text, "topic": hostile_text},
    optional={
        "server_url": st.one_of(
            hostile_text,
            hostile_text.map(lambda t: f"https://{t}/"),
            st.sampled_from(["http://[::1/", "https://ntfy.sh:99999/", "javascript:alert(1)"]),
        ),
        "token": hostile_text,
        "clear_token": hostile_text,
        "owner": st.just("2"),
    },
)


@bounded
@given(data=channel_form_data)
def test_the_channel_form_takes_any_text_without_a_server_error(signed_in, alice, data):
    with rolled_back():
        response = signed_in.post("/channels/", data)
        assert response.status_code in {302, 422}
        channels = list(Channel.objects.filter(owner=alice))
        listed = signed_in.get("/channels/")
        assert_no_markup_injected(listed.content, *[c.name for c in channels])
        for channel in channels:
            # The channel's own page holds the QR code's inline SVG, which the
            # markup check would flag: check it shows the token nowhere.
            page = signed_in.get(f"/channels/{channel.pk}/")
            assert page.status_code == 200
            if len(channel.token) > 8:  # shorter ones may match other text by chance
                assert channel.token not in page.content.decode()
        assert not Channel.objects.exclude(owner=alice).exists()


@bounded
@given(
    data=st.fixed_dictionaries(
        {},
        optional={
            "username": hostile_text,
            "email": hostile_text,
            "password1": hostile_text,
            "password2": hostile_text,
        },
    )
)
def test_the_sign_up_form_takes_any_text_without_a_server_error(client, data):
    with rolled_back():
        response = client.post("/accounts/sign-up/", data)
        assert response.status_code in {200, 302, 422, 429}
        if response.status_code != 302:
            assert_no_markup_injected(response.content)
