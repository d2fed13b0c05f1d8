"""`make test`'s slow part: the type check and the test passes, side by side.

Every test runs on SQLite, and the layers that touch the database run again
on Postgres. Each database's tests are split in two passes (dbtasks', and
the rest), and the four passes and mypy run at once: they share nothing
(each pytest process has its own test database, ports and temporary
files), and most of their time is spent waiting on the processes they start
(workers, gunicorn, a browser, a private Postgres cluster), so on a
two-core machine the whole takes little more than the longest pass. The test
that restarts the Postgres server runs last, alone.

The first pass prints to the terminal as it goes; the others write to
``test-artifacts/<name>.log``, printed after it (their summary, or all of it
when they fail). The exit status is 0 only if every pass passed.

    python -m devtools.passes                  # what `make test` runs
    python -m devtools.passes --serial         # one after another, all on the terminal
    python -m devtools.passes --only postgres  # `make test-postgres`: both Postgres passes
"""

from __future__ import annotations

import argparse
import compileall
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOGS = ROOT / "test-artifacts"

PYTEST = (sys.executable, "-m", "pytest")
# (name, what pytest runs): every test on SQLite...
SQLITE_PASSES = (
    ("sqlite", ("tests", "--ignore=tests/dbtasks")),
    ("sqlite-dbtasks", ("tests/dbtasks",)),
)
# ...and again on Postgres every layer that touches the database. The
# Postgres-only dbtasks tests (a fleet in network namespaces, PgBouncer,
# skewed clocks) go with the app's, so that the two passes take about as
# long: the longest pass is make test's time.
NOT_ALONE = ("-m", "not restarts_postgres")
POSTGRES_PASSES = (
    (
        "postgres",
        (
            *NOT_ALONE,
            "tests/messagecenter/integration",
            "tests/messagecenter/process",
            "tests/deploy",
            "tests/dbtasks/postgres",
        ),
    ),
    (
        "postgres-dbtasks",
        (
            *NOT_ALONE,
            "tests/dbtasks/integration",
            "tests/dbtasks/process",
        ),
    ),
)
# A test that restarts the server would cut the other passes' sessions: it
# runs after them, alone (and skips unless DBTASKS_TEST_PG_RESTART=1).
POSTGRES_ALONE = ("postgres-restart", ("-m", "restarts_postgres", "tests/messagecenter/process"))
KINDS = ("mypy", "sqlite", "postgres")
# The project's own packages, compiled before the passes start (see compile_project).
PACKAGES = ("dbtasks", "messagecenter", "tests", "bench", "devtools")
# Lines of a passing log to show: pytest's summary ("N passed ...") is the last.
SUMMARY_LINES = 3


@dataclass(eq=False)  # a pass is itself, not its fields
class Pass:
    name: str
    command: list[str]
    env: dict[str, str] = field(default_factory=dict)
    # The one pass whose output goes straight to the terminal.
    foreground: bool = False
    process: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    seconds: float = 0.0
    timer: threading.Thread = field(init=False)

    @property
    def log(self) -> Path:
        return LOGS / f"{self.name}.log"

    def start(self) -> None:
        self.started = time.monotonic()
        env = {**os.environ, **self.env}
        if self.foreground:
            self.process = subprocess.Popen(self.command, cwd=ROOT, env=env)
        else:
            with self.log.open("wb") as log:
                self.process = subprocess.Popen(
                    self.command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
                )
        self.timer = threading.Thread(target=self.time_it, daemon=True)
        self.timer.start()

    def finish(self) -> list[str]:
        """Wait for the pass, report it; return [its name] if it failed."""
        assert self.process is not None, "start() first"
        self.timer.join()
        code = self.process.wait()
        self.report(code)
        return [self.name] if code else []

    def time_it(self) -> None:
        """Note how long the pass took the moment it ends (it may be reported later)."""
        assert self.process is not None, "start() first"
        self.process.wait()
        self.seconds = time.monotonic() - self.started

    def report(self, code: int) -> None:
        if not self.foreground:
            lines = self.log.read_text(errors="replace").splitlines()
            shown = lines if code else lines[-SUMMARY_LINES:]
            print(f"\n===== {self.name} ({self.log.relative_to(ROOT)}) =====", flush=True)
            print("\n".join(shown), flush=True)
        verdict = "passed" if code == 0 else f"FAILED (exit {code})"
        print(f"----- {self.name}: {verdict} in {self.seconds:.0f} s", flush=True)


def pytest_pass(name: str, args: tuple[str, ...], env: dict[str, str] | None = None) -> Pass:
    # Each pass its own pytest cache, so that concurrent passes never write one file.
    cache = ("-o", f"cache_dir=.pytest_cache/{name}")
    # Where make test's minutes go: the slowest tests at the end of each
    # log, every test's time in test-artifacts/<name>.xml.
    durations = ("--durations=15", f"--junitxml={LOGS.relative_to(ROOT)}/{name}.xml")
    return Pass(name, [*PYTEST, *cache, *durations, *args], env=env or {})


def postgres_passes(url: str) -> tuple[list[Pass], list[Pass]]:
    """The Postgres passes that run beside the others, and the one that runs alone.

    None (and why) when there is no server to run them on.
    """
    if not url:
        print("Postgres passes skipped: TEST_POSTGRES_URL is empty.", flush=True)
        return [], []
    ready = subprocess.run([sys.executable, "-m", "devtools.pg_ready", url], cwd=ROOT, check=False)
    if ready.returncode != 0:
        print("Postgres passes skipped: nothing answers at TEST_POSTGRES_URL.", flush=True)
        return [], []
    env = {"DATABASE_URL": url}
    together = [pytest_pass(name, args, env) for name, args in POSTGRES_PASSES]
    return together, [pytest_pass(*POSTGRES_ALONE, env)]


def compile_project() -> None:
    """Write the project's bytecode once, for the hundreds of processes the tests start.

    With PYTHONDONTWRITEBYTECODE set (as on CI machines), every worker,
    gunicorn and ``manage.py`` the tests start would compile the project
    from source again; ``uv sync --compile-bytecode`` covers only the
    libraries. (compileall writes whatever that variable says.)
    """
    for package in PACKAGES:
        compileall.compile_dir(ROOT / package, quiet=1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serial", action="store_true", help="run the passes one after another")
    parser.add_argument("--only", choices=KINDS, help="run only these passes")
    options = parser.parse_args(argv)
    LOGS.mkdir(exist_ok=True)
    compile_project()

    together = [pytest_pass(name, args) for name, args in SQLITE_PASSES]
    together.append(Pass("mypy", [sys.executable, "-m", "mypy"]))
    alone: list[Pass] = []
    if options.only in (None, "postgres"):
        postgres, alone = postgres_passes(os.environ.get("TEST_POSTGRES_URL", ""))
        together += postgres
    if options.only:
        together = [each for each in together if each.name.split("-")[0] == options.only]
    for number, each in enumerate([*together, *alone]):
        each.foreground = options.serial or number == 0

    failed: list[str] = []
    if options.serial:
        for each in [*together, *alone]:
            each.start()
            failed += each.finish()
    else:
        for each in together:
            each.start()
        # The terminal's pass first, so that no other report lands inside its output.
        for each in sorted(together, key=lambda each: not each.foreground):
            failed += each.finish()
        for each in alone:
            each.start()
            failed += each.finish()
    if failed:
        print(f"make test: failed: {', '.join(failed)}", flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
