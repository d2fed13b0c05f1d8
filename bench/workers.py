"""Worker (and server) subprocesses: start, watch, measure, stop.

Each process starts in its own session, so stopping it can reach the
children it forked (Celery's prefork pool, gunicorn's workers) by process
group. Output is collected by a reader thread (the last lines are shown when
something goes wrong) so a chatty process never blocks on a full pipe.
"""

from __future__ import annotations

import collections
import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from collections.abc import Sequence
from pathlib import Path

from bench.harness import ROOT


class ManagedProcess:
    """One subprocess this benchmark started, and everything it forked."""

    def __init__(
        self, argv: Sequence[str], *, env: dict[str, str], name: str, log: Path | None = None
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log = log
        self.lines: collections.deque[str] = collections.deque(maxlen=200)
        # A busy server's output goes to a file: a reader thread would compete for the CPU.
        sink = log.open("w") if log else subprocess.PIPE
        self.process = subprocess.Popen(
            self.argv,
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        if not isinstance(sink, int):  # the log file, now the child's
            sink.close()
        self._reader = threading.Thread(target=self._read, name=f"read-{name}", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        if self.process.stdout is None:
            return
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def output(self) -> str:
        if self.log:
            try:
                return "\n".join(self.log.read_text(errors="replace").splitlines()[-200:])
            except OSError:
                return ""
        return "\n".join(self.lines)

    def check_alive(self) -> None:
        if not self.alive():
            raise RuntimeError(
                f"{self.name} exited with {self.process.returncode}:\n{self.output()}"
            )

    def pids(self) -> list[int]:
        """This process and all its descendants."""
        children: dict[int, list[int]] = collections.defaultdict(list)
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            # The command name may hold spaces and parentheses: split after the last ")".
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children[ppid].append(int(entry.name))
        found, todo = [], [self.pid]
        while todo:
            pid = todo.pop()
            found.append(pid)
            todo.extend(children.get(pid, []))
        return found

    def rss_kib(self, *, tree: bool = False) -> int:
        """Resident memory (VmRSS) of the process, or of its whole tree."""
        return sum(vm_rss_kib(pid) for pid in (self.pids() if tree else [self.pid]))

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM, wait, then SIGKILL the process group if anything is left."""
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(5)
        self._reader.join(timeout=2)


def vm_rss_kib(pid: int) -> int:
    """VmRSS of ``pid`` in KiB (0 if it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return 0
    return 0


@contextlib.contextmanager
def started(
    commands: Sequence[Sequence[str]], *, env: dict[str, str], name: str
) -> Iterator[list[ManagedProcess]]:
    """Start one process per command; stop them all on the way out."""
    processes: list[ManagedProcess] = []
    try:
        for index, argv in enumerate(commands):
            processes.append(ManagedProcess(argv, env=env, name=f"{name}-{index + 1}"))
        yield processes
    finally:
        for process in processes:
            process.stop()


def wait_until(
    condition: object,
    *,
    timeout: float,
    interval: float = 0.05,
    watch: Sequence[ManagedProcess] = (),
    what: str = "condition",
) -> float:
    """Poll ``condition()`` until true and return the time.time() it was.

    Fails at once if a watched process dies, with its output.
    """
    assert callable(condition)
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return time.time()
        for process in watch:
            process.check_alive()
        if time.monotonic() > deadline:
            details = "\n".join(f"--- {p.name}:\n{p.output()}" for p in watch)
            raise TimeoutError(f"Timed out after {timeout:.0f}s waiting for {what}.\n{details}")
        time.sleep(interval)
