"""Outbound safety: a user-supplied ntfy server must not let a worker reach the internal network.

Users type their channel's server URL, so the worker's request goes wherever
they say. ``client()`` returns an httpx client that:

- speaks plain http only to hosts ``NTFY_ALLOWED_HTTP_HOSTS`` names (local
  development); everything else must be https;
- resolves the host itself and connects only to addresses that are public,
  or inside ``NTFY_ALLOWED_NETWORKS``: private, loopback, link-local and
  other special ranges are refused. The check is made when connecting, on
  the very address connected to (DNS cannot answer one address to the check
  and another to the connection), and a name with any refused address is
  refused whole;
- ignores proxy environment variables (a proxy would connect for us,
  unchecked) and never follows redirects.

``read_capped()`` reads at most ``MAX_ANSWER_BYTES`` of an answer.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import httpcore
import httpx
from django.conf import settings

# ntfy answers with a few hundred bytes of JSON: more is not ntfy.
MAX_ANSWER_BYTES = 64 * 1024

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class RefusedDestination(Exception):
    """The server's scheme or address is not one the worker may connect to."""


class AnswerTooLarge(Exception):
    """The server's answer was longer than MAX_ANSWER_BYTES."""


@dataclass(frozen=True, slots=True)
class Policy:
    """Where the worker may connect: the two settings, parsed."""

    http_hosts: frozenset[str]
    networks: tuple[IPNetwork, ...]

    @classmethod
    def from_settings(cls) -> Policy:
        return cls(
            http_hosts=frozenset(host.lower() for host in settings.NTFY_ALLOWED_HTTP_HOSTS),
            networks=tuple(ipaddress.ip_network(net) for net in settings.NTFY_ALLOWED_NETWORKS),
        )

    def check_url(self, url: httpx.URL) -> None:
        """Refuse any scheme but https, and http to a host not allowed plain http."""
        if url.scheme == "https":
            return
        if url.scheme == "http" and url.host.lower() in self.http_hosts:
            return
        raise RefusedDestination(
            f"{url.scheme}://{url.host}/ is refused: ntfy servers must use https "
            f"(plain http only for the hosts NTFY_ALLOWED_HTTP_HOSTS names)."
        )

    def allows(self, address: IPAddress) -> bool:
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            address = address.ipv4_mapped
        if any(address in network for network in self.networks):
            return True
        return address.is_global and not address.is_multicast

    def resolve(self, host: str, port: int) -> str:
        """The address to connect to: every address of ``host`` must be allowed."""
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as error:
            raise httpcore.ConnectError(f"Cannot resolve {host}: {error}") from error
        addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
        refused = sorted({str(address) for address in addresses if not self.allows(address)})
        if refused or not addresses:
            raise RefusedDestination(
                f"{host} resolves to {', '.join(refused) or 'nothing'}: a private, loopback, "
                "link-local or reserved address, refused (NTFY_ALLOWED_NETWORKS allows ranges)."
            )
        return str(addresses[0])


class GuardedNetwork(httpcore.SyncBackend):
    """httpcore's network layer, connecting only to addresses the policy allows.

    TLS still verifies the certificate against the host name in the URL:
    httpcore passes it to ``start_tls`` separately from the address.
    """

    def __init__(self, policy: Policy) -> None:
        self.policy = policy

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        address = self.policy.resolve(host, port)
        return super().connect_tcp(address, port, timeout, local_address, socket_options)


class GuardedTransport(httpx.HTTPTransport):
    """An httpx transport whose connections go through ``GuardedNetwork``."""

    def __init__(self, policy: Policy) -> None:
        super().__init__(trust_env=False)
        self.policy = policy
        # The pool httpx built, rebuilt with our network layer (httpx has no
        # public argument for it; httpcore's ConnectionPool does).
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            network_backend=GuardedNetwork(policy),
        )

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.policy.check_url(request.url)
        return super().handle_request(request)


def client(timeout: float) -> httpx.Client:
    """An httpx client that only reaches allowed servers and never follows redirects."""
    return httpx.Client(
        transport=GuardedTransport(Policy.from_settings()),
        timeout=timeout,
        follow_redirects=False,
        trust_env=False,
    )


def read_capped(response: httpx.Response) -> httpx.Response:
    """The answer read whole, or AnswerTooLarge past MAX_ANSWER_BYTES (it stops reading there)."""
    body = bytearray()
    for chunk in response.iter_bytes():
        body.extend(chunk)
        if len(body) > MAX_ANSWER_BYTES:
            raise AnswerTooLarge(
                f"the answer is longer than {MAX_ANSWER_BYTES // 1024} KiB "
                "(ntfy's are a few hundred bytes)"
            )
    decoded_headers = [
        (name, value)
        for name, value in response.headers.multi_items()
        if name.lower() not in {"content-encoding", "content-length", "transfer-encoding"}
    ]
    return httpx.Response(
        response.status_code, headers=decoded_headers, content=bytes(body), request=response.request
    )
