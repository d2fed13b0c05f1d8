"""Step 5 of the tour: the worker loop behind ``manage.py dbtasks_worker``.

The main thread claims rows (``claims.claim``) and hands them to a pool of
``threads`` threads, which run them (``execution.execute``). Between claims it
does the housekeeping: closing lost workers' attempts (``recovery``), handing
back claims it never received, purging old results (``purge``), enqueueing
due recurring tasks (``schedules``). A heartbeat thread proves this process
is alive; on Postgres a listener thread wakes the loop as soon as a task is
enqueued.

Under a backlog, claiming is what a no-op task mostly costs, so it is
pipelined (see ``_capacity``): on Postgres the main thread claims a thread's
next task while the thread still records the last one's outcome; on SQLite,
which writes one transaction at a time, a thread that finished a task claims
its next one itself (``_chain``).

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
from dbtasks.claims import unclaim
from dbtasks.connections import discard_if_broken
from dbtasks.connections import recheck_before_task
from dbtasks.exceptions import WorkerShutdown
from dbtasks.execution import execute
from dbtasks.execution import record_attempt
from dbtasks.heartbeat import Heartbeat
from dbtasks.listener import start_listener
from dbtasks.models import MAX_LENGTH_WORKER_ID
from dbtasks.models import RUNNING
from dbtasks.models import DBTaskResult
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
        self._background_stop = threading.Event()  # ends the heartbeat and listener threads
        self._heartbeat = Heartbeat(
            db=self.db,
            worker_id=self.id,
            backend_name=backend.alias,
            queues=self.queues,
            threads=options.threads,
            interval=self.config.heartbeat_interval,
            clock=clock,
        )
        # Signals received and not acted on yet (see _install_signal_handlers).
        self._signals: deque[int] = deque()

        self._lock = threading.Lock()
        # Claimed rows whose attempt is not closed yet, by id. Of those,
        # _running have not finished their code (so they hold a thread) and
        # _waiting have no thread yet (see _run_one).
        self.in_flight: dict[int, DBTaskResult] = {}
        self._running: set[int] = set()
        self._waiting: set[int] = set()
        self._chaining = 0  # SQLite: threads claiming their own next task (see _chain)
        # Held while claiming and registering the claimed rows (see _hand_back_lost_claims).
        self._claim_lock = threading.Lock()
        # Databases with row locks take concurrent writers: overlap claims with closes.
        self._overlap = connections[self.db].features.has_select_for_update_skip_locked
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
            self._heartbeat.register()
            threads = [self._heartbeat.start(stop=self._background_stop)]
            if self.backend.uses_listen_notify() and not self.options.oneshot:
                threads.append(start_listener(self.db, wake=self.wake, stop=self._background_stop))
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
                self.stopping.set()  # also after --oneshot: threads claim no more
                code = self._drain()
            finally:
                # Abandoned threads may run for a long time yet: do not wait.
                pool.shutdown(wait=not self.abandon.is_set())
                self._background_stop.set()
                for thread in threads:
                    thread.join(timeout=5)
                self._heartbeat.unregister()
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
            # --oneshot ends when a claim finds nothing and nothing was in
            # flight before it: a task closing during the claim may have
            # made itself READY again (a retry) after the claim looked.
            with self._lock:
                idle = not self.in_flight and not self._chaining
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
            if self._should_exit(claimed_any=bool(rows), idle=idle):
                break
            if rows and self._capacity() > 0:
                continue  # more may be ready: claim again at once
            if self._capacity() == 0:
                # Busy: a finishing task sets wake. The timeout keeps housekeeping
                # going while threads chain their own claims (SQLite).
                self._wait(
                    min(self.config.heartbeat_interval.total_seconds(), SCHEDULE_CHECK_INTERVAL)
                )
            else:
                self._wait(delay)
                delay = min(delay * 2, self.options.delay_max)

    def _should_exit(self, *, claimed_any: bool, idle: bool) -> bool:
        limit = self.options.max_tasks
        if limit is not None and self.claimed >= limit:
            logger.info("Worker %s claimed %d tasks (--max-tasks); recycling", self.id, limit)
            self.stopping.set()
            return True
        return self.options.oneshot and not claimed_any and idle

    def _capacity(self) -> int:
        """Threads free for another task, as the main thread claims for them.

        Postgres (``_overlap``): a task whose code has returned no longer
        counts, so the next claim runs while the last outcome is written,
        on two connections at once; the row claimed meanwhile waits those
        few milliseconds for its thread. SQLite: a thread that finished a
        task claims its next one itself (``_chain``), so it still counts.
        """
        with self._lock:
            return self._free_threads()

    def _free_threads(self) -> int:
        """``_capacity()`` for a caller that holds ``_lock``."""
        return self.options.threads - len(self._running) - self._chaining

    def _claim(self, *, limit: int | None = None) -> list[DBTaskResult]:
        """Claim up to ``limit`` rows (default: one per free thread) and count them."""
        with self._claim_lock:
            with self._lock:
                if limit is None:
                    limit = self._free_threads()
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
            with self._lock:
                self.claimed += len(rows)
                for row in rows:
                    self.in_flight[row.pk] = row
                    self._running.add(row.pk)
        return rows

    def _submit(self, pool: TaskThreads, row: DBTaskResult) -> None:
        with self._lock:
            self._waiting.add(row.pk)
        pool.submit(row)

    def _run_one(self, row: DBTaskResult, waited: bool) -> None:
        """Run a claimed row (in a task thread), then any this thread claims after it.

        ``waited``: the thread sat idle until this row came (see _run_claimed).
        """
        with self._lock:
            if row.pk not in self._waiting:
                return  # handed back by _give_back() while it waited
            self._waiting.discard(row.pk)
        next_row: DBTaskResult | None = row
        ping = waited
        while next_row is not None:
            next_row = self._chain() if self._run_claimed(next_row, ping=ping) else None
            ping = False

    def _run_claimed(self, row: DBTaskResult, *, ping: bool) -> bool:
        """Run one claimed row to the end of its attempt; return whether to claim the next.

        ``ping``: have Django health-check the thread's connection before the
        task (``CONN_HEALTH_CHECKS``), so a connection the server dropped while
        the thread sat idle costs a reconnect, not the task's attempt. A thread
        that went straight from its last task to this one skips the round trip.
        """
        if self._stop_requested_at is not None:
            # Stopping: a row that has not started goes back as it was.
            self._hand_back(row, "the worker is stopping")
            return self._finished(row.pk, ran=False)
        completed = False
        try:
            recheck_before_task(self.db, health_check=ping)
            execute(
                row,
                worker_id=self.id,
                policy=self.config.policy(row.queue_name),
                sender=type(self.backend),
                clock=self.clock,
                abandon=self.abandon,
                ran=lambda: self._ran(row.pk),
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
        return self._finished(row.pk)

    def _ran(self, pk: int) -> None:
        """The task's code is done: on Postgres its thread is as good as free (see _capacity)."""
        if self._overlap:
            with self._lock:
                self._running.discard(pk)
            self.wake.set()

    def _finished(self, pk: int, *, ran: bool = True) -> bool:
        """Forget a row whose attempt is closed; return whether this thread claims the next."""
        with self._lock:
            self.in_flight.pop(pk, None)
            self._running.discard(pk)
            if ran:
                self.processed += 1
            chain = not self._overlap and self._may_claim()
            if chain:
                self._chaining += 1  # keep this thread's place: the main thread leaves it
        if not chain:
            self.wake.set()
        return chain

    def _may_claim(self) -> bool:
        limit = self.options.max_tasks
        return not self.stopping.is_set() and (limit is None or self.claimed < limit)

    def _chain(self) -> DBTaskResult | None:
        """SQLite: claim this thread's next task itself; None ends the chain.

        SQLite takes one writer at a time, so a claim by the main thread
        could not overlap with this thread's last write anyway; handing the
        row over would only add a lock wait and a thread switch per task.
        When nothing is ready (or the claim fails), the main thread, which
        polls and backs off, takes over.
        """
        try:
            rows = self._claim(limit=1)
        except DatabaseError:
            logger.warning("Worker %s: claim failed; the main loop retries", self.id, exc_info=True)
            discard_if_broken(self.db)
            rows = []
        with self._lock:
            self._chaining -= 1
        if not rows:
            self.wake.set()
            return None
        return rows[0]

    def _hand_back(self, row: DBTaskResult, why: str) -> None:
        """Give back a claimed row that never started: READY again, its attempt not counted."""
        try:
            handed_back = unclaim(row, worker_id=self.id)
        except DatabaseError:
            # It stays RUNNING for us: lost-worker recovery closes it once we stop.
            logger.warning("Task id=%s: could not hand it back", row.pk, exc_info=True)
            return
        if handed_back:
            logger.info("Task id=%s path=%s handed back unstarted: %s", row.pk, row.task_path, why)

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

    def _give_back(self, rows: list[DBTaskResult]) -> None:
        with self._lock:
            started = [row for row in rows if row.pk not in self._waiting]
            unstarted = [row for row in rows if row.pk in self._waiting]
            self._waiting.clear()
        for row in unstarted:
            self._hand_back(row, "the worker stopped before a thread was free")
        for row in started:
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
            self._hand_back_lost_claims()
        if self.config.schedules and now >= self._next_schedule:
            # Twice a second, so a schedule ticking every second misses none.
            self._next_schedule = now + SCHEDULE_CHECK_INTERVAL
            enqueue_due(self.backend, now=self.clock())
        purge = self.config.purge
        if purge.interval is not None and now >= self._next_purge:
            self._next_purge = now + purge.interval.total_seconds()
            self.purge()

    def _hand_back_lost_claims(self) -> None:
        """Hand back rows claimed for us that we never received.

        A claim commits on the server; if the connection then fails before
        its reply arrives, the worker sees an error and the rows stay RUNNING
        under our live heartbeat, where lost-worker recovery never looks.
        A claim registers its rows in ``in_flight`` under ``_claim_lock``,
        so a row RUNNING for us and not in flight is one of those.
        """
        with self._claim_lock:  # no claim may commit between the snapshot and the query
            with self._lock:
                ours = list(self.in_flight)
            strays = list(
                DBTaskResult.objects.using(self.db)
                .filter(status=RUNNING, worker_id=self.id)
                .exclude(pk__in=ours)
            )
        for row in strays:
            self._hand_back(row, "its claim's reply never reached the worker")

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
