"""SIGTERM and SIGINT, noted as they arrive and acted on by the worker's main thread."""

from __future__ import annotations

import signal
import threading
from collections import deque
from collections.abc import Callable
from types import FrameType

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class SignalInbox:
    """The stop signals received and not acted on yet."""

    def __init__(self) -> None:
        self._received: deque[int] = deque()

    def install(self) -> Callable[[], None]:
        """Catch the stop signals (main thread only); return what restores the old handlers."""
        if threading.current_thread() is not threading.main_thread():
            return lambda: None

        def handle(signum: int, frame: FrameType | None) -> None:
            # Python runs this in the main thread between two bytecodes, which
            # may be inside Event.wait() or Event.clear() with the event's
            # (non-reentrant) lock held: Event.set() here could deadlock the
            # worker. So only note the signal (deque.append takes no lock);
            # the main thread acts on it within the worker's check interval.
            self._received.append(signum)

        previous = {sig: signal.signal(sig, handle) for sig in STOP_SIGNALS}

        def restore() -> None:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

        return restore

    def take(self) -> list[str]:
        """The names of the signals received since the last call, oldest first."""
        names = []
        while self._received:
            names.append(signal.Signals(self._received.popleft()).name)
        return names
