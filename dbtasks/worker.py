"""Step 5 of the tour: the worker loop behind ``manage.py dbtasks_worker``.

The main thread claims rows (``claims.claim``) and hands them to a pool of
``threads`` threads, which run them (``execution.execute``). Between claims it
does the housekeeping: closing lost workers' attempts (``recovery``), purging
old results (``purge``), enqueueing due recurring tasks (``schedules``). A
heartbeat thread proves this process is alive; on Postgres a listener thread
wakes the loop as soon as a task is enqueued.

Shutdown: the first SIGTERM/SIGINT stops claiming and lets running tasks
finish within ``grace`` seconds, then ``run()`` returns 0. A second signal,
or the grace running out, closes the running attempts as ``WorkerShutdown``
(the retry policy applies) and ``run()`` returns 1; the command then exits
without waiting for the abandoned threads. ``--max-tasks`` stops claiming
the same way but waits for running tasks without a deadline (a signal
starts the grace period).
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from types import FrameType

from django.db import DatabaseError
from django.db import connections
from django.utils import timezone

from dbtasks.backend import DatabaseBackend
from dbtasks.claims import claim
from dbtasks.connections import discard_if_broken
from dbtasks.connections import recheck_before_task
from dbtasks.exceptions import WorkerShutdown
from dbtasks.execution import execute
from dbtasks.execution import record_attempt
from dbtasks.listener import start_listener
from dbtasks.models import MAX_LENGTH_WORKER_ID
from dbtasks.models import DBTaskResult
from dbtasks.models import DBWorker
from dbtasks.purge import purge_finished
from dbtasks.purge import purge_unfinished
from dbtasks.recovery import recover_lost_tasks
from dbtasks.schedules import enqueue_due
from dbtasks.threads import TaskThreads

logger = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FORCED = 1
# The longest the main thread waits before it looks at received signals.
SIGNAL_CHECK_INTERVAL = 0.1  # seconds
# How often a worker looks for due ticks of recurring schedules.
SCHEDULE_CHECK_INTERVAL = 0.5  # seconds


def make_worker_id(name: str | None = None) -> str:
    """Return an id unique to this process: name (or host), pid and a random part."""
    prefix = (name or socket.gethostname() or "worker")[: MAX_LENGTH_WORKER_ID - 30]
    return f"{prefix}:{os.getpid()}:{secrets.token_hex(4)}"


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerOptions:
    """How one worker process behaves (the command's flags)."""

    backend_name: str = "default"
    queues: tuple[str, ...] | None = None  # None: every queue of the backend
    excluding: tuple[str, ...] = ()
    name: str | None = None
    threads: int = 1
    oneshot: bool = False
    delay_min: float = 0.05  # seconds
    delay_max: float = 0.25
    max_tasks: int | None = None
    grace: float = 25.0


class Worker:
    """Claims and runs tasks until told to stop."""

    def __init__(
        self,
        backend: DatabaseBackend,
        options: WorkerOptions,
        *,
        clock: Callable[[], datetime] = timezone.now,
    ) -> None:
        self.backend = backend
        self.options = options
        self.config = backend.config
        self.db = backend.db_alias
        self.clock = clock
        self.id = make_worker_id(options.name)
        self.queues = select_queues(backend.queues, options.queues, options.excluding)

        self.stopping = threading.Event()  # stop claiming, finish what runs
        self.abandon = threading.Event()  # stop now, give running attempts back
        self.wake = threading.Event()  # something changed: look for work
        self._stop_requested_at: float | None = None
        self._heartbeat_stop = threading.Event()
        # Signals received and not acted on yet (see _install_signal_handlers).
        self._signals: deque[int] = deque()

        self._lock = threading.Lock()
        self.in_flight: dict[int, DBTaskResult] = {}
        self.claimed = 0
        self.processed = 0
        self._next_recovery = 0.0
        self._next_purge = 0.0
        self._next_schedule = 0.0

    # --- Life cycle ---------------------------------------------------------

    def run(self) -> int:
        """Work until stopped; return the exit code (0, or 1 after a forced stop)."""
        restore_signals = self._install_signal_handlers()
        try:
            self._register()
            threads = [self._start_heartbeat()]
            if self.backend.uses_listen_notify() and not self.options.oneshot:
                threads.append(start_listener(self.db, wake=self.wake, stop=self._heartbeat_stop))
            logger.info(
                "Worker %s started: queues=%s threads=%d backend=%s",
                self.id,
                ",".join(self.queues),
                self.options.threads,
                self.backend.alias,
            )
            pool = TaskThreads(self.options.threads, self._run_one)
            try:
                self._loop(pool)
                code = self._drain()
            finally:
                # Abandoned threads may run for a long time yet: do not wait.
                pool.shutdown(wait=not self.abandon.is_set())
                self._heartbeat_stop.set()
                for thread in threads:
                    thread.join(timeout=5)
                self._unregister()
        finally:
            restore_signals()
        logger.info("Worker %s stopped after %d tasks (exit %d)", self.id, self.processed, code)
        return code

    def request_stop(self) -> None:
        """Stop claiming and let running tasks finish; a second call abandons them."""
        if self._stop_requested_at is not None:
            self.abandon.set()
        else:
            # Also after --max-tasks stopped the claiming: the grace period starts now.
            self._stop_requested_at = time.monotonic()
            self.stopping.set()
        self.wake.set()

    def _install_signal_handlers(self) -> Callable[[], None]:
        if threading.current_thread() is not threading.main_thread():
            return lambda: None

        def handle(signum: int, frame: FrameType | None) -> None:
            # Python runs this in the main thread between two bytecodes, which
            # may be inside Event.wait() or Event.clear() with the event's
            # (non-reentrant) lock held: Event.set() here could deadlock the
            # worker. So only note the signal (deque.append takes no lock);
            # the main thread acts on it within SIGNAL_CHECK_INTERVAL.
            self._signals.append(signum)

        previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGTERM, signal.SIGINT)}

        def restore() -> None:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

        return restore

    def _check_signals(self) -> bool:
        """Act on the signals received since the last call; return whether there were any."""
        if not self._signals:
            return False
        while self._signals:
            name = signal.Signals(self._signals.popleft()).name
            if self._stop_requested_at is not None:
                logger.warning("%s again: stopping now, running attempts will be retried", name)
            else:
                logger.info(
                    "%s: finishing %d running task(s) within %gs; send it again to stop now",
                    name,
                    len(self.in_flight),
                    self.options.grace,
                )
            self.request_stop()
        return True

    def _wait(self, timeout: float) -> None:
        """Wait until woken or ``timeout`` seconds pass, acting on signals as they come."""
        deadline = time.monotonic() + timeout
        while not self._check_signals():
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self.wake.wait(min(remaining, SIGNAL_CHECK_INTERVAL)):
                return

    # --- The loop -----------------------------------------------------------

    def _loop(self, pool: TaskThreads) -> None:
        delay = self.options.delay_min
        db_delay = 0.1
        while True:
            self._check_signals()  # in case one came while we were not waiting
            if self.stopping.is_set():
                break
            self.wake.clear()
            try:
                self._housekeeping()
                rows = self._claim()
            except DatabaseError:
                # The database went away for a moment: keep the worker, retry.
                logger.warning("Database error; retrying in %.1fs", db_delay, exc_info=True)
                discard_if_broken(self.db)
                self._wait(db_delay)
                db_delay = min(db_delay * 2, 30)
                continue
            db_delay = 0.1
            for row in rows:
                self._submit(pool, row)
            if rows:
                delay = self.options.delay_min
            if self._should_exit(claimed_any=bool(rows)):
                break
            if rows and self._capacity() > 0:
                continue  # more may be ready: claim again at once
            if self._capacity() == 0:
                # Busy: a finishing task sets wake. The timeout keeps housekeeping going.
                self._wait(self.config.heartbeat_interval.total_seconds())
            else:
                self._wait(delay)
                delay = min(delay * 2, self.options.delay_max)

    def _should_exit(self, *, claimed_any: bool) -> bool:
        limit = self.options.max_tasks
        if limit is not None and self.claimed >= limit:
            logger.info("Worker %s claimed %d tasks (--max-tasks); recycling", self.id, limit)
            self.stopping.set()
            return True
        return self.options.oneshot and not claimed_any and not self.in_flight

    def _capacity(self) -> int:
        with self._lock:
            return self.options.threads - len(self.in_flight)

    def _claim(self) -> list[DBTaskResult]:
        limit = self._capacity()
        if self.options.max_tasks is not None:
            limit = min(limit, self.options.max_tasks - self.claimed)
        rows = claim(
            db=self.db,
            backend_name=self.backend.alias,
            queues=self.queues,
            worker_id=self.id,
            limit=limit,
            now=self.clock(),
        )
        self.claimed += len(rows)
        return rows

    def _submit(self, pool: TaskThreads, row: DBTaskResult) -> None:
        with self._lock:
            self.in_flight[row.pk] = row
        pool.submit(row)

    def _run_one(self, row: DBTaskResult) -> None:
        """Run one claimed row (in a task thread)."""
        completed = False
        try:
            recheck_before_task(self.db)
            execute(
                row,
                worker_id=self.id,
                policy=self.config.policy(row.queue_name),
                sender=type(self.backend),
                clock=self.clock,
                abandon=self.abandon,
            )
            completed = True
        finally:
            if not completed:
                # execute() records every task failure itself; reaching here
                # is a bug in dbtasks (the thread's excepthook prints it).
                # Stop, so the row is recovered once we are gone instead of
                # staying RUNNING under a live heartbeat.
                logger.critical("Worker %s failed to run task id=%s; stopping", self.id, row.pk)
                self.request_stop()
            self._finished(row.pk)

    def _finished(self, pk: int) -> None:
        with self._lock:
            self.in_flight.pop(pk, None)
            self.processed += 1
        self.wake.set()

    # --- Stopping -----------------------------------------------------------

    def _drain(self) -> int:
        """Wait for running tasks within the grace period; give back the rest."""
        if self.in_flight:
            logger.info("Worker %s waiting for %d running task(s)", self.id, len(self.in_flight))
        while self.in_flight and not self.abandon.is_set():
            remaining = 0.5  # --max-tasks: no deadline until a signal asks to stop
            if self._stop_requested_at is not None:
                deadline = self._stop_requested_at + self.options.grace
                remaining = min(deadline - time.monotonic(), remaining)
                if remaining <= 0:
                    logger.warning(
                        "Worker %s: grace period of %gs is over", self.id, self.options.grace
                    )
                    break
            self._wait(remaining)
            self.wake.clear()
        with self._lock:
            left = list(self.in_flight.values())
        if not left:
            return EXIT_OK
        self.abandon.set()
        self._give_back(left)
        return EXIT_FORCED

    def _give_back(self, rows: Iterable[DBTaskResult]) -> None:
        for row in rows:
            error = WorkerShutdown(
                f"Worker {self.id!r} was stopped while running attempt {row.attempt_count}."
            )
            try:
                attempt = record_attempt(
                    row,
                    worker_id=self.id,
                    policy=self.config.policy(row.queue_name),
                    now=self.clock(),
                    error=error,
                )
            except DatabaseError:
                # Recovery closes it as WorkerLost once our heartbeat stops.
                logger.exception("Task id=%s: could not record the shutdown", row.pk)
            else:
                if attempt is not None:
                    logger.warning(
                        "Task id=%s path=%s given back (WorkerShutdown); now %s",
                        row.pk,
                        row.task_path,
                        row.status,
                    )
                # Else the task's own thread recorded its outcome just now.

    # --- Housekeeping -------------------------------------------------------

    def _housekeeping(self) -> None:
        now = time.monotonic()
        if now >= self._next_recovery:
            self._next_recovery = now + self.config.heartbeat_interval.total_seconds()
            recover_lost_tasks(
                db=self.db, backend_name=self.backend.alias, config=self.config, now=self.clock()
            )
        if self.config.schedules and now >= self._next_schedule:
            # Twice a second, so a schedule ticking every second misses none.
            self._next_schedule = now + SCHEDULE_CHECK_INTERVAL
            enqueue_due(self.backend, now=self.clock())
        purge = self.config.purge
        if purge.interval is not None and now >= self._next_purge:
            self._next_purge = now + purge.interval.total_seconds()
            self.purge()

    def purge(self) -> None:
        """Delete results older than the purge policy allows."""
        purge = self.config.purge
        now = self.clock()
        common = {"db": self.db, "backend_name": self.backend.alias, "batch_size": purge.batch_size}
        deleted = 0
        if purge.finished is not None:
            deleted += purge_finished(before=now - purge.finished, **common)
        if purge.unfinished is not None:
            deleted += purge_unfinished(before=now - purge.unfinished, **common)
        if deleted:
            logger.info("Worker %s purged %d old task results", self.id, deleted)

    # --- Heartbeat ----------------------------------------------------------

    def _register(self) -> None:
        now = self.clock()
        DBWorker.objects.using(self.db).create(
            worker_id=self.id,
            backend_name=self.backend.alias,
            hostname=socket.gethostname()[:255],
            pid=os.getpid(),
            queues=list(self.queues),
            threads=self.options.threads,
            started_at=now,
            heartbeat_at=now,
        )

    def _unregister(self) -> None:
        try:
            DBWorker.objects.using(self.db).filter(worker_id=self.id).delete()
        except DatabaseError:
            logger.warning("Worker %s could not unregister; it will expire", self.id, exc_info=True)

    def heartbeat(self) -> None:
        """Prove this worker is alive (and re-register if we were taken for dead)."""
        beat = DBWorker.objects.using(self.db).filter(worker_id=self.id)
        if not beat.update(heartbeat_at=self.clock()):
            logger.warning("Worker %s was presumed lost; registering again", self.id)
            self._register()

    def _start_heartbeat(self) -> threading.Thread:
        def beat_until_stopped() -> None:
            interval = self.config.heartbeat_interval.total_seconds()
            try:
                while not self._heartbeat_stop.wait(interval):
                    try:
                        self.heartbeat()
                    except DatabaseError:
                        logger.warning("Worker %s heartbeat failed", self.id, exc_info=True)
                        discard_if_broken(self.db)
            finally:
                connections.close_all()

        thread = threading.Thread(target=beat_until_stopped, name="dbtasks-heartbeat", daemon=True)
        thread.start()
        return thread


def select_queues(
    configured: Iterable[str], only: Iterable[str] | None, excluding: Iterable[str]
) -> tuple[str, ...]:
    """The queues a worker serves: ``only`` (or all configured) minus ``excluding``."""
    configured = set(configured)
    if not configured and not only:
        # Empty QUEUES means the backend takes any queue name (Django's rule),
        # so there is no list to serve by default.
        raise ValueError("The backend accepts any queue name (QUEUES is empty); pass --queue.")
    chosen = set(only) if only else configured
    unknown = (chosen | set(excluding)) - configured if configured else set()
    if unknown:
        raise ValueError(
            f"Unknown queue(s) {', '.join(sorted(unknown))}; "
            f"the backend has {', '.join(sorted(configured))}."
        )
    chosen -= set(excluding)
    if not chosen:
        raise ValueError("No queue left to serve.")
    return tuple(sorted(chosen))
