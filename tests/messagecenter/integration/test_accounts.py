"""Accounts: sign up, verify the address from the email, sign in; reset a forgotten password.

Every email goes through dbtasks.mail.TaskEmailBackend: the request only
enqueues it, and the worker (run_worker) hands it to locmem's outbox.
"""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from django.core import mail

from dbtasks.models import DBTaskResult
from tests.conftest import run_worker
from tests.html import parse

pytestmark = pytest.mark.django_db(transaction=True)

PASSWORD = "a-long-new-passphrase-42"
SIGN_UP = {
    "username": "carol",
    "email": "carol@example.com",
    "password1": PASSWORD,
    "password2": PASSWORD,
}


@pytest.fixture(autouse=True)
def mail_through_tasks(settings):
    settings.EMAIL_BACKEND = "dbtasks.mail.TaskEmailBackend"
    settings.DBTASKS_EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"


def link_in_last_mail() -> str:
    match = re.search(r"http://testserver(/\S+)", mail.outbox[-1].message().get_content())
    assert match, mail.outbox[-1].message().get_content()
    return match.group(1)


def test_sign_up_verify_then_sign_in(client):
    response = client.post("/accounts/sign-up/", SIGN_UP)
    assert response.status_code == 302
    assert response["Location"] == "/accounts/sign-up/done/"
    carol = get_user_model().objects.get(username="carol")
    assert not carol.is_active
    # The request only enqueued the mail; a worker sends it.
    assert mail.outbox == []
    assert DBTaskResult.objects.filter(task_path="dbtasks.mail.send_email").count() == 1
    assert not client.login(username="carol", password=PASSWORD)  # not verified yet

    run_worker()
    (sent,) = mail.outbox
    assert sent.recipients() == ["carol@example.com"]
    assert sent.subject == "Confirm your Message Center account"

    link = link_in_last_mail()
    verified = client.get(link)
    assert verified.status_code == 302
    assert verified["Location"] == "/accounts/login/"
    carol.refresh_from_db()
    assert carol.is_active
    # The link works once.
    assert client.get(link).status_code == 400

    signed_in = client.post("/accounts/login/", {"username": "carol", "password": PASSWORD})
    assert signed_in.status_code == 302
    assert client.get("/").status_code == 200


@pytest.mark.parametrize(
    "link",
    [
        "/accounts/verify/MQ/not-a-token/",
        "/accounts/verify/!!!/x-y/",
        "/accounts/verify/OTk5OTk5/abc-def/",
    ],
)
def test_a_bad_verification_link_is_a_clear_400(client, link):
    client.post("/accounts/sign-up/", SIGN_UP)
    response = client.get(link)
    assert response.status_code == 400
    assert "This link is not valid" in response.content.decode()
    assert not get_user_model().objects.get(username="carol").is_active


def test_an_address_already_used_is_refused(client, django_user_model):
    django_user_model.objects.create_user("dave", email="Carol@Example.com", password="x")
    response = client.post("/accounts/sign-up/", SIGN_UP)
    assert response.status_code == 422
    error = parse(response.content).find("#id_email_error")
    assert "An account already uses this address" in error.text
    assert not DBTaskResult.objects.exists()


def test_a_password_reset_from_the_email_link(client, django_user_model):
    django_user_model.objects.create_user("erin", email="erin@example.com", password="old-pw-1")
    response = client.post("/accounts/password_reset/", {"email": "erin@example.com"})
    assert response.status_code == 302
    assert mail.outbox == []
    run_worker()
    assert mail.outbox[-1].subject == "Reset your Message Center password"

    form_page = client.get(link_in_last_mail(), follow=True)
    assert form_page.status_code == 200
    set_password_url = form_page.redirect_chain[-1][0]
    done = client.post(
        set_password_url, {"new_password1": PASSWORD, "new_password2": PASSWORD}, follow=True
    )
    assert "Password changed" in done.content.decode()
    assert client.login(username="erin", password=PASSWORD)


def test_a_reset_for_an_unknown_address_looks_the_same_and_sends_nothing(client):
    response = client.post("/accounts/password_reset/", {"email": "nobody@example.com"})
    assert response.status_code == 302
    assert response["Location"] == "/accounts/password_reset/done/"
    assert not DBTaskResult.objects.exists()


def test_the_pages_link_to_sign_up_reset_and_password_change(client, alice):
    login = client.get("/accounts/login/").content.decode()
    assert 'href="/accounts/sign-up/"' in login
    assert 'href="/accounts/password_reset/"' in login
    client.force_login(alice)
    assert 'href="/accounts/password_change/"' in client.get("/").content.decode()
