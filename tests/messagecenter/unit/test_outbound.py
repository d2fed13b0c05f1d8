"""Outbound safety: the worker reaches only servers the settings allow, and fails clearly otherwise.

The stand-in ntfy listens on loopback. The test settings allow loopback (as
development does); each test here that takes the allowance away shows the
request refused before anything is sent.
"""

from __future__ import annotations

import ipaddress

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.tasks import TaskResultStatus

from messagecenter import ntfy as client
from messagecenter import outbound
from messagecenter.channels import Channel
from messagecenter.checks import check_ntfy_allowed_networks
from messagecenter.models import Notification
from messagecenter.sending import send
from tests.conftest import run_worker
from tests.ntfy_server import Reply


def publish(url: str) -> dict:
    return client.publish(client.Message(message="hi"), url=url)


@pytest.mark.parametrize(
    "address",
    [
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "127.0.0.1",
        "169.254.169.254",  # cloud metadata services live here
        "100.64.0.1",
        "0.0.0.0",
        "224.0.0.1",
        "::1",
        "fe80::1",
        "fc00::1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
    ],
)
def test_private_loopback_and_link_local_addresses_are_refused(address):
    policy = outbound.Policy(http_hosts=frozenset(), networks=())
    assert not policy.allows(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["93.184.215.14", "2606:4700:4700::1111", "::ffff:8.8.8.8"])
def test_public_addresses_are_allowed(address):
    policy = outbound.Policy(http_hosts=frozenset(), networks=())
    assert policy.allows(ipaddress.ip_address(address))


def test_a_setting_allows_a_private_range():
    policy = outbound.Policy(http_hosts=frozenset(), networks=(ipaddress.ip_network("10.0.0.0/8"),))
    assert policy.allows(ipaddress.ip_address("10.9.8.7"))
    assert not policy.allows(ipaddress.ip_address("192.168.0.1"))


def test_loopback_is_reached_when_the_settings_allow_it(ntfy):
    assert publish(ntfy.topic_url)["topic"] == "test-topic"


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_loopback_is_refused_when_not_allowed_before_anything_is_sent(ntfy, settings, host):
    settings.NTFY_ALLOWED_NETWORKS = []
    url = f"http://{host}:{ntfy.port}/test-topic"
    with pytest.raises(client.NtfyRejected, match=r"loopback.*refused"):
        publish(url)
    assert ntfy.requests == []


def test_plain_http_is_refused_unless_the_host_is_allowed(ntfy, settings):
    settings.NTFY_ALLOWED_HTTP_HOSTS = ["localhost"]
    with pytest.raises(client.NtfyRejected, match="ntfy servers must use https"):
        publish(ntfy.topic_url)  # http://127.0.0.1:port/
    assert ntfy.requests == []
    assert publish(f"http://localhost:{ntfy.port}/test-topic")["topic"] == "test-topic"


def test_proxy_variables_cannot_route_around_the_check(ntfy, settings, monkeypatch):
    settings.NTFY_ALLOWED_NETWORKS = []
    monkeypatch.setenv("HTTP_PROXY", "http://192.0.2.1:3128")
    monkeypatch.setenv("ALL_PROXY", "http://192.0.2.1:3128")
    with pytest.raises(client.NtfyRejected, match="refused"):
        publish(ntfy.topic_url)


def test_redirects_are_not_followed_even_to_an_invalid_url(ntfy):
    ntfy.reply_always(Reply(status=302, headers={"Location": "http://[not a url"}, body=b""))
    with pytest.raises(client.NtfyRejected, match="redirecting to"):
        publish(ntfy.topic_url)
    assert len(ntfy.requests) == 1


def test_an_answer_over_the_cap_is_refused(ntfy):
    ntfy.reply_always(Reply(body={"id": "x", "padding": "x" * (outbound.MAX_ANSWER_BYTES + 1)}))
    with pytest.raises(client.NtfyRejected, match="longer than 64 KiB"):
        publish(ntfy.topic_url)


def test_an_invalid_url_is_a_clear_permanent_error():
    with pytest.raises(client.NtfyRejected, match=r"Cannot post to .*non-printable"):
        publish("https://exa\x00mple.com/topic")


def test_an_unparsable_url_is_a_configuration_error_not_a_crash():
    with pytest.raises(ImproperlyConfigured, match="is not an ntfy topic URL"):
        publish("https://[::1/topic")


@pytest.mark.django_db(transaction=True)
def test_a_channel_on_a_refused_address_fails_at_once(ntfy, settings, django_user_model):
    settings.NTFY_ALLOWED_NETWORKS = []
    alice = django_user_model.objects.create_user("alice")
    channel = Channel.objects.create(
        owner=alice, name="Internal", server_url=ntfy.url, topic="internal"
    )
    notification = Notification.objects.create(owner=alice, channel=channel, message="hi")
    result = send(notification).results[0]  # the one channel's send
    run_worker()
    result.refresh()
    assert result.status == TaskResultStatus.FAILED
    assert result.attempts == 1  # PermanentFailure: not retried
    assert "refused" in result.errors[-1].traceback
    assert ntfy.requests == []


def test_a_malformed_allowed_network_is_a_system_check_error(settings):
    settings.NTFY_ALLOWED_NETWORKS = ["127.0.0.0/8", "10.0.0.300/8"]
    (error,) = check_ntfy_allowed_networks()
    assert error.id == "messagecenter.E005"
    assert error.msg == "NTFY_ALLOWED_NETWORKS has '10.0.0.300/8', which is not a network."
