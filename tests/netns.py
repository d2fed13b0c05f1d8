"""Worker "hosts" on one machine: network namespaces, each joined to this one by a veth pair.

Host ``n`` of a fleet is the namespace ``mcfleet-<tag>-<n>``. Its pair has
``10.77.<net>.1/24`` on this side (where a database listens) and
``10.77.<net>.2/24`` inside. ``cut()`` takes this side's end down, as a
failed switch port would: neither end is told, packets just stop, and the
TCP connections across it hang until ``heal()`` brings the link back.
While a host is cut, a blackhole route (made with the host) swallows what
this side sends it, instead of the default route carrying it off the
machine.

Making namespaces needs root and iproute2; ``Fleet`` raises ``CannotMake``
with the reason when it cannot (the tests skip on it). Everything it made
is removed by ``close()``, even after a failure half-way.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass


class CannotMake(RuntimeError):
    """Namespaces cannot be made here; the message says why."""


class Taken(RuntimeError):
    """The tag's first namespace exists already: another fleet (another test run) has it."""


def ip(*args: str) -> None:
    """Run ``ip *args``; raise with its error output if it fails."""
    done = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)} failed: {done.stderr.strip()}")


@dataclass(frozen=True)
class Host:
    namespace: str
    veth: str  # this side's end of the pair: what cut() takes down
    server_address: str  # 10.77.<net>.1, on this side
    address: str  # 10.77.<net>.2, inside the namespace

    def command(self, argv: list[str]) -> list[str]:
        """``argv`` run inside the namespace (``ip netns exec`` execs it: the pid is the same)."""
        return ["ip", "netns", "exec", self.namespace, *argv]

    def cut(self) -> None:
        ip("link", "set", self.veth, "down")

    def heal(self) -> None:
        ip("link", "set", self.veth, "up")


class Fleet:
    """``count`` hosts on subnets ``10.77.<first_net>.0/24`` onwards."""

    def __init__(self, tag: str, *, count: int, first_net: int) -> None:
        if os.geteuid() != 0:
            raise CannotMake("making network namespaces needs root")
        if shutil.which("ip") is None:
            raise CannotMake("iproute2's `ip` is not installed")
        self.hosts: list[Host] = []
        self._undo: list[Callable[[], None]] = []
        try:
            for number in range(1, count + 1):
                self.hosts.append(self._make(f"mcfleet-{tag}-{number}", first_net + number - 1))
        except BaseException:
            self.close()
            raise

    def _make(self, namespace: str, net: int) -> Host:
        # Interface names hold 15 characters at most.
        host = Host(namespace, f"mcf{net}h", f"10.77.{net}.1", f"10.77.{net}.2")
        inside = f"mcf{net}n"
        try:
            ip("netns", "add", namespace)
        except RuntimeError as error:
            if self.hosts:
                raise
            # The first one: the tag is someone else's, or namespaces cannot be made here.
            raise (Taken if "File exists" in str(error) else CannotMake)(str(error)) from None
        self._undo.append(lambda: ip("netns", "delete", namespace))
        ip("link", "add", host.veth, "type", "veth", "peer", "name", inside)
        # Deleting either end deletes the pair (the namespace's deletion would too).
        self._undo.append(lambda: ip("link", "delete", host.veth))
        ip("link", "set", inside, "netns", namespace)
        ip("addr", "add", f"{host.server_address}/24", "dev", host.veth)
        ip("link", "set", host.veth, "up")
        ip("-n", namespace, "addr", "add", f"{host.address}/24", "dev", inside)
        ip("-n", namespace, "link", "set", inside, "up")
        ip("-n", namespace, "link", "set", "lo", "up")
        # Below the link's own route, so it only counts while the link is down.
        blackhole = ("route", "add", "blackhole", f"10.77.{net}.0/24", "metric", "4000")
        ip(*blackhole)
        self._undo.append(lambda: ip("route", "delete", *blackhole[2:]))
        return host

    def close(self) -> None:
        """Remove everything made, newest first; raise at the end if anything resisted."""
        failures = []
        while self._undo:
            try:
                self._undo.pop()()
            except RuntimeError as error:
                failures.append(str(error))
        if failures:
            raise RuntimeError("could not remove: " + "; ".join(failures))
