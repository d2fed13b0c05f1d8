"""The README is the tutorial: it must agree with the code it points at."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from dbtasks.management.commands.dbtasks_worker import Command
from dbtasks.options import _QUEUE_KEYS
from dbtasks.options import _TOP_KEYS
from dbtasks.purge_options import _PURGE_KEYS
from dbtasks.schedule_options import _SCHEDULE_KEYS
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


# --- The tour ("Follow one notification through the code") --------------------

STEP_CLAIM = re.compile(r"\bSteps? ((?:\d+)(?:(?:, | and )\d+)*) of the tour\b")
CODE_FOLDERS = ("dbtasks", "messagecenter", "devtools", "bench")


def section(text: str, title: str) -> str:
    """The body of the ``## title`` section, up to the next ``## ``."""
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def tour_steps(text: str) -> dict[int, str]:
    """Each numbered step of the README's tour, by its number."""
    tour = section(text, "Follow one notification through the code")
    parts = re.split(r"^(\d+)\. ", tour, flags=re.MULTILINE)
    return {int(number): body for number, body in zip(parts[1::2], parts[2::2], strict=True)}


def claimed_steps(path: Path) -> set[int]:
    """The steps a module's docstring says it is ("Step 4 of the tour", "Steps 2 and 7 ...")."""
    docstring = ast.get_docstring(ast.parse(path.read_text())) or ""
    return {
        int(number)
        for claim in STEP_CLAIM.findall(docstring)
        for number in re.findall(r"\d+", claim)
    }


def modules_claiming_steps() -> dict[str, set[int]]:
    modules = (
        path
        for folder in CODE_FOLDERS
        for path in (ROOT / folder).rglob("*.py")
        # bench/.venv-others: the comparison arms' packages, built by make bench.
        if ".venv-others" not in path.parts
    )
    claims = {str(path.relative_to(ROOT)): claimed_steps(path) for path in modules}
    return {module: steps for module, steps in claims.items() if steps}


STEPS = tour_steps(README)
CLAIMS = modules_claiming_steps()


def test_the_tour_numbers_its_steps_in_order():
    assert len(STEPS) >= 10
    assert list(STEPS) == list(range(1, len(STEPS) + 1))


@pytest.mark.parametrize("number", sorted(STEPS))
def test_the_module_a_step_is_about_says_so(number):
    modules = [target for target in relative_links(STEPS[number]) if target.endswith(".py")]
    assert modules, f"Step {number} of the README's tour links no module"
    assert number in CLAIMS.get(modules[0], set()), (
        f"{modules[0]} is step {number} of the README's tour: its docstring should say "
        f'"Step {number} of the tour"'
    )


@pytest.mark.parametrize("module", sorted(CLAIMS))
def test_a_module_names_the_readme_step_that_links_it(module):
    for number in sorted(CLAIMS[module]):
        assert number in STEPS, f"{module} claims step {number}; the tour has {len(STEPS)}"
        assert module in relative_links(STEPS[number]), (
            f"{module} says it is step {number} of the tour, but the README's step "
            f"{number} does not link it"
        )


def test_the_step_claims_are_found():
    # Not vacuous: most steps' modules say which step they are.
    assert len(CLAIMS) >= len(STEPS)


def test_a_wrong_step_number_is_caught(tmp_path):
    module = tmp_path / "mod.py"
    module.write_text('"""Steps 2 and 12 of the tour: something."""\n')
    assert claimed_steps(module) == {2, 12}
    assert not set(claimed_steps(module)) <= set(STEPS)


# --- Where things live -------------------------------------------------------


def layout_rows() -> list[tuple[str, list[str]]]:
    """(folder, the files its row names) for each row of the "Where things live" table."""
    rows = []
    for line in section(README, "Where things live").splitlines():
        links = relative_links(line)
        if line.startswith("| [") and links:
            rows.append((links[0], re.findall(r"`([\w/]+\.py)`", line)))
    return rows


def test_where_things_live_names_every_dbtasks_package():
    folders = {folder for folder, _ in layout_rows()}
    packages = {
        f"{path.parent.relative_to(ROOT)}/"
        for path in (ROOT / "dbtasks").glob("*/__init__.py")
        if path.parent.name != "migrations"
    }
    assert packages <= folders
    assert "dbtasks/" in folders


@pytest.mark.parametrize(("folder", "files"), layout_rows())
def test_where_things_live_names_real_files(folder, files):
    assert files
    missing = [name for name in files if not (ROOT / folder / name).exists()]
    assert missing == [], f"README's map says {folder} holds {missing}"


# --- No internal work items ---------------------------------------------------

WORK_ITEM = re.compile(r"\b(?:issues?|tickets?|work items?|PR)\s*#?\d+", re.IGNORECASE)
TEXT_SUFFIXES = {".py", ".md", ".html", ".js", ".css", ".toml", ".yml", ".txt", ".in", ""}


def project_text_files() -> list[Path]:
    roots = [ROOT / name for name in ("dbtasks", "messagecenter", "devtools", "bench", "docs")]
    roots += [ROOT / name for name in ("tests", "templates", ".ci", "requirements")]
    files = [path for root in roots for path in root.rglob("*") if path.is_file()]
    files += [ROOT / name for name in ("README.md", "Makefile", "pyproject.toml", "Dockerfile")]
    return [
        path
        for path in files
        if path.suffix in TEXT_SUFFIXES
        and not path.name.endswith(".min.js")
        and not {"__pycache__", "results", ".venv-others"} & set(path.relative_to(ROOT).parts)
        and path != Path(__file__)  # its samples below
    ]


def test_no_reference_to_an_issue_number():
    # Code and docs say the thing itself, never "see issue 6".
    files = project_text_files()
    assert len(files) > 100
    found = [
        f"{path.relative_to(ROOT)}: {match.group()}"
        for path in files
        for match in WORK_ITEM.finditer(path.read_text(errors="replace"))
    ]
    assert found == []


def test_an_issue_number_would_be_found():
    assert WORK_ITEM.search("Targets (issue #6)")
    assert WORK_ITEM.search("see Issue 12")
    assert not WORK_ITEM.search("Your order #1042 has shipped")


# --- Type ignores say why -----------------------------------------------------

TYPE_IGNORE = re.compile(r"#\s*type:\s*ignore\b(?P<codes>\[[^\]]*\])?(?P<after>.*)$")


def unexplained_type_ignores(lines: list[str]) -> list[int]:
    """Line numbers of ``type: ignore`` comments with no error code or no reason.

    The reason is a comment after it on the line, or a comment line just above.
    """
    found = []
    for number, line in enumerate(lines, start=1):
        match = TYPE_IGNORE.search(line)
        if match is None:
            continue
        reason_after = match["after"].strip().startswith("#")
        reason_above = number > 1 and lines[number - 2].strip().startswith("#")
        if not match["codes"] or not (reason_after or reason_above):
            found.append(number)
    return found


def test_every_type_ignore_has_a_code_and_a_reason():
    python_files = [path for path in project_text_files() if path.suffix == ".py"]
    found = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in python_files
        for number in unexplained_type_ignores(path.read_text().splitlines())
    ]
    assert found == []


def test_an_unexplained_type_ignore_is_found():
    ignore = "# type: ignore"
    lines = [
        f"x = 1  {ignore}[misc]  # the stubs are wrong",
        "# the stubs are wrong",
        f"y = 2  {ignore}[misc]",
        f"z = 3  {ignore}[misc]",
        f"w = 4  {ignore}  # no code",
    ]
    assert unexplained_type_ignores(lines) == [4, 5]
