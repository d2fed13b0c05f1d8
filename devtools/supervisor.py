"""The processes `make run` starts, side by side in the foreground, and how they stop.

``Supervisor`` prefixes each child's output with its name (like `heroku local`
or honcho), stops them all together on Ctrl-C, and stops the rest when one
dies. ``PollCounter`` keeps the page's live-channel polls out of the log.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from types import FrameType
from typing import TextIO

BASE_DIR = Path(__file__).resolve().parent.parent
# Ctrl-C gives the worker its grace period to finish a delivery; after this
# long (or a third Ctrl-C) whatever is left is killed.
STOP_TIMEOUT = 30.0
STARTUP_TIMEOUT = 60.0
COLOURS = {"web": "36", "worker": "35", "ntfy": "33"}
# runserver's log line for an answered poll of the page's live channel. An
# open page asks every second while something moves: shown one by one, they
# would bury everything else, so they are counted and summarised instead.
POLL_LINE = re.compile(r'"GET /notifications/live/[^"]*" (200|204) ')
POLL_SUMMARY_EVERY = 60.0


@dataclass
class Child:
    """One supervised process and the thread that forwards its output."""

    name: str
    process: subprocess.Popen[str]
    pump: threading.Thread = field(init=False)

    def send(self, signum: int) -> None:
        """Signal the child's whole process group (runserver's reloader has a child of its own)."""
        if self.process.poll() is None:
            # It may exit between poll() and killpg(): then nothing is left to stop.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signum)

    def stop_leftovers(self, timeout: float = 5.0) -> None:
        """Wait for what the child left in its group, then kill it.

        runserver's autoreloader runs the server in a child process; on
        Ctrl-C the parent can exit a moment before that child has.
        """
        deadline = time.monotonic() + timeout
        while group_alive(self.process.pid):
            if time.monotonic() > deadline:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                return
            time.sleep(0.05)


def group_alive(pgid: int) -> bool:
    """Whether any process is left in the process group ``pgid``."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


class Supervisor:
    """Start processes, forward their output, stop them together."""

    def __init__(self, out: TextIO = sys.stdout) -> None:
        self.out = out
        self.children: list[Child] = []
        self.lock = threading.Lock()
        self.wakeup = threading.Event()
        self.signals: list[int] = []
        self.colour = out.isatty() and "NO_COLOR" not in os.environ
        self.polls = PollCounter()

    def say(self, name: str, line: str) -> None:
        prefix = f"{name:<6} |"
        if self.colour:
            prefix = f"\033[{COLOURS.get(name, '0')}m{prefix}\033[0m"
        with self.lock:
            self.out.write(f"{prefix} {line.rstrip()}\n")
            self.out.flush()

    def print(self, text: str) -> None:
        with self.lock:
            self.out.write(text + "\n")
            self.out.flush()

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> Child:
        process = subprocess.Popen(
            argv,
            cwd=BASE_DIR,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
            # Its own process group: Ctrl-C in the terminal reaches only this
            # supervisor, which then stops each child exactly once, in order.
            start_new_session=True,
        )
        child = Child(name, process)
        child.pump = threading.Thread(target=self._pump, args=(child,), daemon=True)
        child.pump.start()
        self.children.append(child)
        self.say(name, f"started (pid {process.pid}): {' '.join(argv[1:])}")
        return child

    def _pump(self, child: Child) -> None:
        assert child.process.stdout is not None
        for line in child.process.stdout:
            if child.name == "web" and POLL_LINE.search(line):
                if summary := self.polls.count():
                    self.say(child.name, summary)
                continue
            self.say(child.name, line)

    def on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.signals.append(signum)
        self.wakeup.set()

    def wait_until_listening(self, host: str, port: int, child: Child) -> bool:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline and not self.signals:
            if child.process.poll() is not None:
                return False
            if port_in_use(host, port):
                return True
            self.wakeup.wait(0.1)
        return False

    def run(self, main: list[Child], after: list[Child]) -> int:
        """Wait until a signal or a death among ``main``; stop ``main``, then ``after``.

        ``after`` (the stand-in ntfy server) outlives the worker, which may be
        delivering to it while it shuts down.
        """
        failed = False
        reported: set[str] = set()
        handled = 0
        deadline: float | None = None
        while any(c.process.poll() is None for c in main):
            if len(self.signals) > handled:
                handled = len(self.signals)
                if handled == 1:
                    self.say("run", "stopping (Ctrl-C again to cut the worker's grace short)")
                    deadline = time.monotonic() + STOP_TIMEOUT
                # A second Ctrl-C reaches the worker too: it gives running
                # tasks back for retry at once. A third one kills.
                sig = signal.SIGINT if handled < 3 else signal.SIGKILL
                for child in main:
                    child.send(sig)
            elif deadline is None and (dead := [c for c in main if c.process.poll() is not None]):
                for child in dead:
                    self.say(child.name, f"exited with status {child.process.returncode}")
                    reported.add(child.name)
                failed = True
                deadline = time.monotonic() + STOP_TIMEOUT
                for child in main:
                    child.send(signal.SIGINT)
            elif deadline is not None and time.monotonic() > deadline:
                for child in main:
                    child.send(signal.SIGKILL)
            self.wakeup.clear()
            self.wakeup.wait(0.1)
        for child in after:
            child.send(signal.SIGINT)
            try:
                child.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                child.send(signal.SIGKILL)
                child.process.wait()
        for child in self.children:
            child.stop_leftovers()
            child.pump.join(timeout=2)
            if child.process.returncode not in (0, -signal.SIGINT, -signal.SIGTERM):
                if child.name not in reported:
                    self.say(child.name, f"exited with status {child.process.returncode}")
                failed = True
        return 1 if failed else 0


class PollCounter:
    """Counts the live channel's polls; says how many once a minute at most."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.since = clock()
        self.polls = 0

    def count(self) -> str:
        """Count one poll; return a summary line when one is due, else ""."""
        self.polls += 1
        now = self.clock()
        if now - self.since < POLL_SUMMARY_EVERY:
            return ""
        summary = (
            f"{self.polls} polls of /notifications/live/ in the last {now - self.since:.0f} s "
            "(answered; not logged one by one)"
        )
        self.since, self.polls = now, 0
        return summary


def port_in_use(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0
