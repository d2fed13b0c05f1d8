"""Request limits: a body over the cap is refused before anything reads it; pages are not cached."""

from __future__ import annotations

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


def test_a_body_over_the_cap_is_a_413_before_the_csrf_check_reads_it(settings):
    settings.MAX_REQUEST_BODY_BYTES = 10_000
    client = Client(enforce_csrf_checks=True)
    # A multipart upload: without the cap, the CSRF check would parse it (and
    # Django spool the file to disk) to look for a token, then answer 403.
    response = client.post("/accounts/login/", {"file": ("x" * 20_000)})
    assert response.status_code == 413
    assert response.content.decode().endswith("this site accepts at most 10000.")
    # Under the cap: the CSRF check runs as usual.
    assert client.post("/accounts/login/", {"username": "x"}).status_code == 403


def test_a_content_length_that_is_not_a_number_is_a_400(client):
    response = client.generic("POST", "/accounts/login/", b"", CONTENT_LENGTH="12abc")
    assert response.status_code == 400


def test_the_cap_is_also_djangos_in_memory_limits(settings):
    from messagecenter import settings as project

    assert project.DATA_UPLOAD_MAX_MEMORY_SIZE == project.MAX_REQUEST_BODY_BYTES
    assert project.FILE_UPLOAD_MAX_MEMORY_SIZE == project.MAX_REQUEST_BODY_BYTES


@pytest.mark.parametrize("url", ["/", "/channels/", "/accounts/password_change/"])
def test_private_pages_are_never_stored(signed_in, url):
    response = signed_in.get(url)
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    assert "private" in response["Cache-Control"]


def test_the_sign_in_page_is_not_stored_either(client):
    assert "no-store" in client.get("/accounts/login/")["Cache-Control"]
