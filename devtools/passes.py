"""`make test`'s slow part: the type check and both test passes, side by side.

The SQLite pass (everything) and the Postgres pass (the database layers again)
share nothing: different databases, their own ports, their own temporary
files. Most of their time is spent waiting on processes they start (workers,
gunicorn, a browser), so on a two-core machine running them at once takes
little more than the longer of the two. mypy runs beside them too.

The SQLite pass prints to the terminal as it goes; the others write to
``test-artifacts/<name>.log``, printed after it (their summary, or all of it
when they fail). The exit status is 0 only if every pass passed.

    python -m devtools.passes                  # what `make test` runs
    python -m devtools.passes --serial         # one after another, all on the terminal
    python -m devtools.passes --only postgres  # `make test-postgres`
"""

from __future__ import annotations

import argparse
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

# What the Postgres pass reruns: every layer that touches the database.
POSTGRES_PATHS = (
    "tests/dbtasks/integration",
    "tests/dbtasks/process",
    "tests/dbtasks/postgres",
    "tests/messagecenter/integration",
    "tests/messagecenter/process",
    "tests/deploy",
)
NAMES = ("mypy", "sqlite", "postgres")
# Lines of a passing log to show: pytest's summary ("N passed ...") is the last.
SUMMARY_LINES = 3


@dataclass
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


def postgres_pass(url: str) -> Pass | None:
    """The Postgres pass, or None (and why) when there is no server to run it on."""
    if not url:
        print("Postgres pass skipped: TEST_POSTGRES_URL is empty.", flush=True)
        return None
    ready = subprocess.run([sys.executable, "-m", "devtools.pg_ready", url], cwd=ROOT, check=False)
    if ready.returncode != 0:
        print("Postgres pass skipped: nothing answers at TEST_POSTGRES_URL.", flush=True)
        return None
    return Pass(
        "postgres",
        [sys.executable, "-m", "pytest", "-o", "cache_dir=.pytest_cache/postgres", *POSTGRES_PATHS],
        env={"DATABASE_URL": url},
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serial", action="store_true", help="run the passes one after another")
    parser.add_argument("--only", choices=NAMES, help="run this pass alone")
    options = parser.parse_args(argv)
    LOGS.mkdir(exist_ok=True)

    passes = [
        Pass("mypy", [sys.executable, "-m", "mypy"]),
        Pass("sqlite", [sys.executable, "-m", "pytest"], foreground=True),
    ]
    if options.only in (None, "postgres"):
        postgres = postgres_pass(os.environ.get("TEST_POSTGRES_URL", ""))
        passes += [postgres] if postgres is not None else []
    if options.only:
        passes = [each for each in passes if each.name == options.only]
    if options.serial or len(passes) == 1:
        for each in passes:
            each.foreground = True

    failed: list[str] = []
    if options.serial:
        for each in passes:
            each.start()
            failed += each.finish()
    else:
        for each in passes:
            each.start()
        # The terminal's pass first, so that no other report lands inside its output.
        for each in sorted(passes, key=lambda each: not each.foreground):
            failed += each.finish()
    if failed:
        print(f"make test: failed: {', '.join(failed)}", flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
