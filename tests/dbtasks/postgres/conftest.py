"""The fleet of worker hosts in network namespaces (tests/fleet.py)."""

from __future__ import annotations

from tests.fleet import fleet  # noqa: F401
