"""Keep the README's ``dbtasks_worker --help`` block in step with the command.

``python -m devtools.readme`` rewrites the block; tests/test_docs.py fails
when it is out of date.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"
MARKER = "<!-- dbtasks_worker --help -->"
BLOCK = re.compile(re.escape(MARKER) + r"\n```text\n.*?```", re.DOTALL)


def worker_help() -> str:
    """The worker's --help text, at a fixed width so it is the same everywhere."""
    os.environ["COLUMNS"] = "88"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    import django

    django.setup()
    from dbtasks.management.commands.dbtasks_worker import Command

    parser = Command().create_parser("manage.py", "dbtasks_worker")
    return parser.format_help()


def rendered(text: str) -> str:
    return BLOCK.sub(lambda _: f"{MARKER}\n```text\n{worker_help()}```", text)


def main() -> int:
    text = README.read_text()
    README.write_text(rendered(text))
    print("README.md: dbtasks_worker --help block updated.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
