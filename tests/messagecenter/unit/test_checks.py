"""messagecenter's system checks: NTFY_URL, SECRET_KEY and (outside DEBUG) ALLOWED_HOSTS."""

from __future__ import annotations

import pytest
from django.core import checks

from messagecenter.checks import E001_HINT
from messagecenter.checks import E001_MSG
from messagecenter.checks import check_allowed_hosts
from messagecenter.checks import check_ntfy_url
from messagecenter.checks import check_secret_key


def test_missing_ntfy_url_is_an_error_outside_debug(settings):
    settings.DEBUG = False
    settings.NTFY_URL = ""
    (error,) = check_ntfy_url()
    assert error.id == "messagecenter.E001"
    assert error.level == checks.ERROR
    assert error.msg == "NTFY_URL is not set, so notifications cannot be delivered."
    assert error.hint == "Set NTFY_URL to your ntfy topic URL, e.g. https://ntfy.sh/<topic>."
    assert (error.msg, error.hint) == (E001_MSG, E001_HINT)


def test_missing_ntfy_url_is_fine_in_debug(settings):
    settings.DEBUG = True
    settings.NTFY_URL = ""
    assert check_ntfy_url() == []


@pytest.mark.parametrize("url", ["https://ntfy.sh/alerts", "http://127.0.0.1:8090/messagecenter"])
def test_topic_url_passes(settings, url):
    settings.NTFY_URL = url
    assert check_ntfy_url() == []


@pytest.mark.parametrize("url", ["https://ntfy.sh", "ntfy.sh/alerts", "https://ntfy.sh/bad topic"])
def test_malformed_ntfy_url_is_an_error(settings, url):
    settings.DEBUG = True  # even in development: it could never deliver
    settings.NTFY_URL = url
    (error,) = check_ntfy_url()
    assert error.id == "messagecenter.E002"
    assert error.msg == f"NTFY_URL {url!r} is not an ntfy topic URL."


def test_check_is_registered(settings):
    settings.NTFY_URL = ""
    settings.DEBUG = False
    ids = [message.id for message in checks.run_checks()]
    assert "messagecenter.E001" in ids


def test_an_empty_secret_key_is_an_error(settings):
    settings.SECRET_KEY = ""
    (error,) = check_secret_key()
    assert error.id == "messagecenter.E003"
    assert error.msg.startswith("SECRET_KEY is not set")


def test_empty_allowed_hosts_is_an_error_outside_debug(settings):
    settings.ALLOWED_HOSTS = []
    settings.DEBUG = False
    (error,) = check_allowed_hosts()
    assert error.id == "messagecenter.E004"
    settings.DEBUG = True
    assert check_allowed_hosts() == []
