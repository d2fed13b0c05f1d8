"""Step 5 of the tour: the worker loop behind ``manage.py dbtasks_worker``.

The main thread claims rows (``dbtasks/sql/claim.py``) and hands them to a
pool of ``threads`` threads (``pool.py``), which run them (``execution.py``).
Between claims it does the chores of ``maintenance.py``: closing lost
workers' attempts, handing back claims it never received, enqueueing due
recurring tasks, purging old results, the heartbeat's chores
(``heartbeat.py``; a child process beats). On Postgres a listener thread
(``dbtasks/sql/notify.py``) wakes the loop when a task is enqueued.
``outage.py``: what the worker does while the database refuses it.

Under a backlog, claiming is what a no-op task mostly costs, so it is
pipelined (see ``InFlight.free_threads``): on Postgres the main thread claims a thread's
next task while the thread still records the last one's outcome; on SQLite,
which writes one transaction at a time, a thread that finished a task claims
its next one itself (``_chain``). And when the tasks are quick, a claim
takes the next few rows ahead (``ahead.py``), and their outcomes are
written together (``batching.py``).

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
import threading
import time
from collections.abc import Callable
from datetime import datetime

from django.db import DatabaseError
from django.db import connections

from dbtasks.backend import DatabaseBackend
from dbtasks.cancellation import StopReason
from dbtasks.clock import DatabaseClock
from dbtasks.models import DBTaskResult
from dbtasks.sql.notify import start_listener
from dbtasks.worker.ahead import BUDGET
from dbtasks.worker.ahead import OVERDUE
from dbtasks.worker.ahead import ClaimAhead
from dbtasks.worker.alone import AloneTasks
from dbtasks.worker.batching import OutcomeBatch
from dbtasks.worker.claiming import claim_rows
from dbtasks.worker.connections import discard_if_broken
from dbtasks.worker.fencing import watch_attempts
from dbtasks.worker.heartbeat import Beating
from dbtasks.worker.heartbeat import Heartbeat
from dbtasks.worker.inflight import InFlight
from dbtasks.worker.interrupts import Interrupts
from dbtasks.worker.maintenance import SCHEDULE_CHECK_INTERVAL
from dbtasks.worker.maintenance import Maintenance
from dbtasks.worker.options import WorkerOptions
from dbtasks.worker.options import make_worker_id
from dbtasks.worker.options import select_queues
from dbtasks.worker.outage import Outage
from dbtasks.worker.pool import TaskThreads
from dbtasks.worker.pulse import Pulse
from dbtasks.worker.pulse import can_share
from dbtasks.worker.running import Runner
from dbtasks.worker.signals import SignalInbox
from dbtasks.worker.stopping import EXIT_HUNG
from dbtasks.worker.stopping import EXIT_STALLED
from dbtasks.worker.stopping import drain
from dbtasks.worker.throttle import Throttle

logger = logging.getLogger(__name__)

# The longest the main thread waits before it looks at received signals.
SIGNAL_CHECK_INTERVAL = 0.1  # seconds


class Worker:
    """Claims and runs tasks until told to stop."""

    def __init__(
        self,
        backend: DatabaseBackend,
        options: WorkerOptions,
        *,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        # clock: what the worker takes for "now". By default the database
        # server's (dbtasks/clock.py); tests pass one they move by hand.
        self.backend = backend
        self.options = options
        self.config = backend.config
        self.db = backend.db_alias
        database_clock = DatabaseClock(self.db)
        self.clock: Callable[[], datetime] = clock or database_clock
        self.id = make_worker_id(options.name)
        self.queues = select_queues(backend.queues, options.queues, options.excluding)
        # Paused queues (dbtasks.queues), refreshed by the housekeeping.
        self.paused: frozenset[str] = frozenset()

        self.stopping = threading.Event()  # stop claiming, finish what runs
        self.abandon = threading.Event()  # stop now, give running attempts back
        self.wake = threading.Event()  # something changed: look for work
        self.stop_requested_at: float | None = None
        self._background_stop = threading.Event()  # ends the listener thread
        heartbeat = Heartbeat(
            db=self.db,
            worker_id=self.id,
            backend_name=backend.alias,
            queues=self.queues,
            threads=options.threads,
            interval=self.config.heartbeat_interval,
            clock=self.clock,
            after_beat=lambda: watch_attempts(self.interrupts, db=self.db, worker_id=self.id),
            sync_clock=database_clock.sync if clock is None else lambda: None,
        )
        # The heartbeat that task code holding the GIL cannot starve (pulse.py).
        interval = self.config.heartbeat_interval.total_seconds()
        pulse = Pulse(db=self.db, worker_id=self.id, interval=interval)
        with_pulse = clock is None and options.heartbeat_process and can_share(self.db)
        self.beating = Beating(heartbeat, pulse if with_pulse else None)
        self._signals = SignalInbox()
        self.in_flight = InFlight(options.threads)
        self.ahead = ClaimAhead(options.threads)
        self.batch = OutcomeBatch(self)  # quick tasks' outcomes, written together
        self.alone = AloneTasks(self)
        # Held while claiming and registering the claimed rows (see
        # Maintenance.hand_back_lost_claims).
        self.claim_lock = threading.Lock()
        # Databases with row locks take concurrent writers: overlap claims with closes.
        self.overlap = connections[self.db].features.has_select_for_update_skip_locked
        self.runner = Runner(self)
        self.throttle = Throttle(self)  # rate-limited keys (throttle.py)
        self.interrupts = Interrupts()
        self.pool: TaskThreads | None = None
        # Set when too many threads hung in tasks past their timeout.
        self.hung_exit = False
        self.max_hung_threads = options.max_hung_threads or options.threads
        self._maintenance = Maintenance(self)
        self.outage = Outage(self)

    @property
    def stop_requested(self) -> bool:
        """Whether a signal or ``request_stop()`` asked this worker to stop."""
        return self.stop_requested_at is not None

    @property
    def processed(self) -> int:
        """Attempts this worker ran to their end."""
        return self.in_flight.processed

    # --- Life cycle ---------------------------------------------------------

    def run(self) -> int:
        """Work until stopped; return the exit code (0, or 1 after a forced stop)."""
        restore_signals = self._install_signal_handlers()
        try:
            self.outage.register()
            self.beating.start()
            threads: list[threading.Thread] = []
            if self.backend.uses_listen_notify() and not self.options.oneshot:
                listen = self.backend.listen_alias
                threads.append(start_listener(listen, wake=self.wake, stop=self._background_stop))
            logger.info(
                "Worker %s started: queues=%s threads=%d backend=%s",
                self.id,
                ",".join(self.queues),
                self.options.threads,
                self.backend.alias,
            )
            pool = self.pool = TaskThreads(self.options.threads, self.runner.run_one)
            try:
                self._loop()
                self.stopping.set()  # also after --oneshot: threads claim no more
                code = drain(self)
                if self.hung_exit:
                    code = EXIT_HUNG
                if self.outage.stalled:
                    code = EXIT_STALLED
            finally:
                # Abandoned threads may run for a long time yet: do not wait.
                pool.shutdown(wait=not self.abandon.is_set())
                self._background_stop.set()
                for thread in threads:
                    thread.join(timeout=5)
                self.beating.stop()
                self.beating.heartbeat.unregister()
        finally:
            restore_signals()
        logger.info("Worker %s stopped after %d tasks (exit %d)", self.id, self.processed, code)
        return code

    def request_stop(self) -> None:
        """Stop claiming and let running tasks finish; a second call abandons them."""
        if self.stop_requested_at is not None:
            self.abandon.set()
        else:
            # Also after --max-tasks stopped the claiming: the grace period starts now.
            self.stop_requested_at = time.monotonic()
            self.stopping.set()
        self.wake.set()

    def interrupt_attempt(self, row_id: int, attempt: int, reason: StopReason) -> bool:
        """Ask attempt ``attempt`` of row ``row_id``, if this worker runs it, to stop.

        Any worker code may call it (from any thread); see ``dbtasks.cancellation``
        for what the task sees. Return False if that attempt is not running here
        or was asked already.
        """
        return self.interrupts.interrupt(row_id, attempt, reason)

    def tend(self) -> None:
        """In the main thread, between claims: the heartbeat's chores, the stall check."""
        self.outage.check()
        self.beating.tend()
        self.runner.hand_back_overdue(OVERDUE)
        self.batch.write(older_than=BUDGET)

    def _install_signal_handlers(self) -> Callable[[], None]:
        return self._signals.install()

    def _check_signals(self) -> bool:
        """Act on the signals received since the last call; return whether there were any."""
        names = self._signals.take()
        for name in names:
            if self.stop_requested_at is not None:
                logger.warning("%s again: stopping now, running attempts will be retried", name)
            else:
                logger.info(
                    "%s: finishing %d running task(s) within %gs; send it again to stop now",
                    name,
                    len(self.in_flight),
                    self.options.grace,
                )
            self.request_stop()
        return bool(names)

    def wait(self, timeout: float) -> None:
        """Wait until woken or ``timeout`` seconds pass, acting on signals as they come."""
        deadline = time.monotonic() + timeout
        while not self._check_signals():
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self.wake.wait(min(remaining, SIGNAL_CHECK_INTERVAL)):
                return
            self.tend()  # a long poll interval must not delay cancel requests

    # --- The loop -----------------------------------------------------------

    def _loop(self) -> None:
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
            idle = self.in_flight.idle()
            try:
                self.tend()
                self._maintenance.run()
                rows = self.claim()
            except DatabaseError:
                # The database went away for a moment: keep the worker, retry.
                logger.warning("Database error; retrying in %.1fs", db_delay, exc_info=True)
                discard_if_broken(self.db)
                self.wait(db_delay)
                db_delay = min(db_delay * 2, 30)
                continue
            db_delay = 0.1
            self.runner.hand_over(rows)
            if rows:
                delay = self.options.delay_min
            if self._should_exit(claimed_any=bool(rows), idle=idle):
                break
            if rows and self.in_flight.free_threads() > 0:
                continue  # more may be ready: claim again at once
            if self.in_flight.free_threads() <= 0:  # below 0 with rows claimed ahead
                # Busy: a finishing task sets wake. The timeout keeps housekeeping
                # going while threads chain their own claims (SQLite).
                self.wait(
                    min(self.config.heartbeat_interval.total_seconds(), SCHEDULE_CHECK_INTERVAL)
                )
            else:
                self.wait(self.throttle.wait_for(delay))
                delay = min(delay * 2, self.options.delay_max)

    def _should_exit(self, *, claimed_any: bool, idle: bool) -> bool:
        limit = self.options.max_tasks
        if limit is not None and self.in_flight.claimed >= limit:
            logger.info("Worker %s claimed %d tasks (--max-tasks); recycling", self.id, limit)
            self.stopping.set()
            return True
        return self.options.oneshot and not claimed_any and idle

    def claim(self, *, limit: int | None = None) -> list[DBTaskResult]:
        """Claim up to ``limit`` rows (default: one per free thread) and count them."""
        return claim_rows(self, limit)
