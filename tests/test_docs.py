"""The README is the tutorial: it must agree with the code it points at."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from dbtasks.management.commands.dbtasks_worker import Command
from dbtasks.options import _PURGE_KEYS
from dbtasks.options import _QUEUE_KEYS
from dbtasks.options import _SCHEDULE_KEYS
from dbtasks.options import _TOP_KEYS
from devtools import readme

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def relative_links(text: str) -> list[str]:
    return [target for target in LINK.findall(text) if not re.match(r"[a-z]+:", target)]


@pytest.mark.parametrize("target", sorted(set(relative_links(README))))
def test_every_relative_link_resolves(target):
    assert (ROOT / target).exists(), f"README links to {target}, which does not exist"


def test_the_readme_links_into_the_code():
    assert len(relative_links(README)) > 20


def test_every_worker_option_is_documented():
    parser = Command().create_parser("manage.py", "dbtasks_worker")
    ours = [
        option
        for action in parser._actions
        for option in action.option_strings
        if option.startswith("--") and action.dest not in _DJANGO_OPTIONS
    ]
    assert ours
    missing = [option for option in ours if option not in README]
    assert missing == []


_DJANGO_OPTIONS = {
    "help",
    "version",
    "verbosity",
    "settings",
    "pythonpath",
    "traceback",
    "no_color",
    "force_color",
    "skip_checks",
}


@pytest.mark.parametrize("key", sorted({*_TOP_KEYS, *_QUEUE_KEYS, *_PURGE_KEYS, *_SCHEDULE_KEYS}))
def test_every_options_key_is_documented(key):
    assert f"`{key}`" in README or f"`purge.{key}`" in README


def test_the_help_block_is_the_commands_help():
    assert readme.rendered(README) == README, (
        "The README's dbtasks_worker --help block is out of date: run python -m devtools.readme"
    )


@pytest.mark.parametrize("command", ["make run", "make test"])
def test_the_two_commands_are_there(command):
    assert f"\n{command}\n" in README
