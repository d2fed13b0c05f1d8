"""The orchestrator's working parts: arms, databases, calls into arms, raw results.

``Bench`` is what each figure's ``run(bench)`` gets: the arms that apply,
``call()`` to run one phase of the figure inside an arm (a fresh
subprocess), ``interleave()`` to do that round by round with the arm order
rotated each round, and ``record()`` for the raw numbers that end up in the
JSON file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any

from bench.environment import PostgresDatabases
from bench.harness import CELERY
from bench.harness import RESULT_MARK
from bench.harness import ROOT
from bench.harness import Arm
from bench.harness import rotated


class ArmFailed(RuntimeError):
    """A phase of a figure failed inside an arm (its output says why)."""


def stop_gently(process: subprocess.Popen[str]) -> None:
    """SIGTERM first, so the arm stops the workers it started; SIGKILL if it hangs."""
    process.terminate()
    try:
        process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()


@dataclass
class Bench:
    arms: list[Arm]
    rounds: int
    quick: bool
    scratch: Path
    postgres: PostgresDatabases | None
    results: dict[str, Any]
    skipped: dict[str, str] = field(default_factory=dict)
    memory_arms: list[str] | None = None
    _databases: dict[tuple[str, str, str], str] = field(default_factory=dict)

    # --- Arms ---------------------------------------------------------------

    def arms_for(self, systems: Sequence[str], stores: Sequence[str] | None = None) -> list[Arm]:
        return [
            arm
            for arm in self.arms
            if arm.system in systems and (stores is None or arm.store in stores)
        ]

    # --- Databases ----------------------------------------------------------

    def database(self, arm: Arm, purpose: str = "main", settings: str = "bench.settings") -> str:
        """The URL of the arm's database for ``purpose``, created and migrated on first use."""
        key = (arm.system, arm.store, purpose)
        if key in self._databases:
            return self._databases[key]
        name = f"bench_{arm.system}_{purpose}"
        if arm.store == "sqlite":
            url = f"sqlite:///{self.scratch / f'{name}.sqlite3'}"
        elif arm.store == "postgres" and self.postgres is not None:
            url = self.postgres.create(name)
        else:
            raise ArmFailed(f"{arm.name} has no database")
        self._databases[key] = url
        self.call(arm, "migrate", "migrate", {}, url=url, settings=settings, timeout=300)
        return url

    # --- Calling into an arm ------------------------------------------------

    def call(
        self,
        arm: Arm,
        figure: str,
        phase: str,
        params: dict[str, Any],
        *,
        url: str | None = None,
        purpose: str = "main",
        settings: str = "bench.settings",
        timeout: float = 900,
    ) -> dict[str, Any]:
        """Run ``bench.<figure>.measure(arm, phase, params)`` in a fresh subprocess."""
        env = {key: value for key, value in os.environ.items() if key != "VIRTUAL_ENV"}
        env |= arm.env
        env["PYTHONPATH"] = str(ROOT)
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        django = arm.system != CELERY or settings != "bench.settings"
        if django:
            env["DJANGO_SETTINGS_MODULE"] = settings
            env["BENCH_DATABASE_URL"] = url or self.database(arm, purpose, settings)
        else:
            env.pop("DJANGO_SETTINGS_MODULE", None)
        payload = {"arm": arm.to_json(), "params": params, "django": django}
        process = subprocess.Popen(
            [arm.python, "-m", "bench.runner", figure, phase],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env=env,
        )
        try:
            stdout, stderr = process.communicate(json.dumps(payload), timeout=timeout)
        except subprocess.TimeoutExpired as error:
            stop_gently(process)
            what = f"{figure}/{phase} on {arm.name}"
            raise ArmFailed(f"{what} timed out after {timeout:.0f}s") from error
        except BaseException:
            stop_gently(process)
            raise
        for line in reversed(stdout.splitlines()):
            if line.startswith(RESULT_MARK):
                result: dict[str, Any] = json.loads(line[len(RESULT_MARK) :])
                return result
        tail = "\n".join((stdout + stderr).strip().splitlines()[-25:])
        what = f"{figure}/{phase} on {arm.name}"
        raise ArmFailed(f"{what} failed (exit {process.returncode}):\n{tail}")

    def refresh_databases(self) -> None:
        """Migrate every database made so far again (a no-op unless the code changed)."""
        for (system, store, purpose), url in list(self._databases.items()):
            arm = next((a for a in self.arms if (a.system, a.store) == (system, store)), None)
            if arm is None:
                continue
            settings = "bench.web_settings" if purpose == "web" else "bench.settings"
            try:
                self.call(arm, "migrate", "migrate", {}, url=url, settings=settings, timeout=300)
            except ArmFailed as error:
                print(f"    ! could not migrate {url}: {error}", flush=True)

    # --- Rounds and raw results ---------------------------------------------

    def figure_results(self, figure: str) -> dict[str, Any]:
        figures: dict[str, dict[str, Any]] = self.results["figures"]
        return figures.setdefault(figure, {"params": {}, "rounds": {}, "setup": {}, "errors": {}})

    def record(self, figure: str, arm: Arm, data: dict[str, Any]) -> None:
        self.figure_results(figure)["rounds"].setdefault(arm.name, []).append(data)

    def error(self, figure: str, arm: Arm, error: Exception) -> None:
        print(f"    ! {arm.name}: {error}", file=sys.stderr, flush=True)
        self.figure_results(figure)["errors"].setdefault(arm.name, []).append(str(error))

    def interleave(
        self,
        figure: str,
        arms: Sequence[Arm],
        params: dict[str, Any],
        *,
        phase: str = "round",
        purpose: str = "main",
        timeout: float = 900,
    ) -> None:
        """Each round, measure every arm once (A B C, B C A, ...); record what they return."""
        self.figure_results(figure)["params"] = params
        for round_number in range(1, self.rounds + 1):
            for arm in rotated(list(arms), round_number - 1):
                self.measure_once(
                    figure,
                    arm,
                    params,
                    round_number,
                    phase=phase,
                    purpose=purpose,
                    timeout=timeout,
                )

    def measure_once(
        self,
        figure: str,
        arm: Arm,
        params: dict[str, Any],
        round_number: int,
        *,
        phase: str = "round",
        purpose: str = "main",
        url: str | None = None,
        settings: str = "bench.settings",
        timeout: float = 900,
    ) -> dict[str, Any] | None:
        started = time.monotonic()
        try:
            data = self.call(
                arm,
                figure,
                phase,
                params,
                purpose=purpose,
                url=url,
                settings=settings,
                timeout=timeout,
            )
        except ArmFailed as error:
            self.error(figure, arm, error)
            return None
        data = {"round": round_number, **data}
        self.record(figure, arm, data)
        shown = ", ".join(
            f"{key}={value:,.1f}" if isinstance(value, float) else f"{key}={value}"
            for key, value in data.items()
            if key != "round" and isinstance(value, int | float)
        )
        print(
            f"    round {round_number} {arm.name:<26} {shown} ({time.monotonic() - started:.0f}s)",
            flush=True,
        )
        return data
