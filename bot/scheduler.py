"""The scheduler inside `gridbot run`: a handful of periodic sweeps, one leader among processes.

APScheduler's AsyncIOScheduler runs each sweep of workflows.routines.sweeps.SWEEPS on an interval
(coalesce=True, max_instances=1, misfire_grace_time): a late or missed run happens once, and every
sweep also runs right at start so a restart catches up once. The sweeps themselves decide what is
due from the database and record what they did (routine_mark, Outbox.dedupe_key, case stage), so
a run repeated for any reason does nothing twice.

With PostgreSQL, only the process holding the advisory lock LOCK_KEY (pg_try_advisory_lock on a
dedicated connection) runs sweeps; the others stay paused and try again every few seconds. When
the leader dies its connection closes, the lock is released, and another process takes over.
With SQLite there is one process and it always leads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from workflows.clock import Clock, SystemClock
from workflows.routines import deadline_digest
from workflows.routines.sweeps import SWEEPS, run_sweep

from .settings import Settings

log = logging.getLogger(__name__)

LOCK_KEY = 0x67726964  # "grid"
LEADER_RETRY_SECONDS = 10.0
JOB_DEFAULTS = {"coalesce": True, "max_instances": 1, "misfire_grace_time": 300}


def triggers(timezone: str) -> dict[str, IntervalTrigger]:
    # start on a round minute, so runs line up with the minute reminders are due
    anchor = datetime(2026, 1, 1, tzinfo=UTC)
    return {name: IntervalTrigger(seconds=s.every_seconds, start_date=anchor, timezone=timezone)
            for name, s in SWEEPS.items()}


def next_runs(timezone: str, now: datetime | None = None) -> dict[str, datetime | None]:
    now = now or datetime.now(UTC)
    return {name: trig.get_next_fire_time(None, now) for name, trig in triggers(timezone).items()}


class Scheduler:
    def __init__(self, settings: Settings, sessionmaker: async_sessionmaker[AsyncSession], office=None,
                 clock: Clock | None = None, leader_retry: float = LEADER_RETRY_SECONDS) -> None:
        self.settings = settings
        self.sessionmaker = sessionmaker
        self.office = office
        deadline_digest.configure(settings.deadline_digest_over)
        self.clock = clock or (office.clock if office is not None else SystemClock())
        self.channels = office.channels if office is not None else settings.chat_channels | {"terminal"}
        self.leader_retry = leader_retry
        self.aps: AsyncIOScheduler | None = None
        self.is_leader = False
        self._lock_conn: AsyncConnection | None = None
        self._leader_task: asyncio.Task | None = None
        self._running: set[asyncio.Task] = set()  # sweeps APScheduler started and that have not ended
        self.catch_up = True

    @property
    def engine(self) -> AsyncEngine:
        return self.sessionmaker.kw["bind"]

    async def run_job(self, name: str) -> None:
        if not self.is_leader:
            return
        try:
            result = await run_sweep(self.sessionmaker, name, clock=self.clock, channels=self.channels,
                                     language=self.settings.language, timezone=self.settings.timezone)
        except Exception:
            return  # logged and recorded in sweep_run by run_sweep; the next run tries again
        if result.acted:
            log.info("sweep %s: %s", name, result.counts)
            if self.office is not None and self.office.on_commit:
                self.office.on_commit()  # wake the delivery worker

    async def _scheduled(self, name: str) -> None:
        """A run started by APScheduler, tracked so that stop() can cancel it and wait for it
        while the database is still open: a sweep cancelled only after engine.dispose() never
        finishes, and the process hangs on exit (Ctrl-C at the minute a sweep starts)."""
        task = asyncio.current_task()
        self._running.add(task)
        try:
            await self.run_job(name)
        except asyncio.CancelledError:
            return  # stopped mid-run: nothing to report (APScheduler would log it as a failure)
        finally:
            self._running.discard(task)

    async def run_all(self) -> None:
        """Every sweep once, now (the terminal runs this after its clock is moved)."""
        for name in SWEEPS:
            await self.run_job(name)

    async def start(self, catch_up: bool = True) -> None:
        """catch_up=False: the first runs wait for their interval (the terminal runs them itself,
        before its first prompt, so their output does not land in the middle of what is typed)."""
        self.catch_up = catch_up
        self.aps = AsyncIOScheduler(timezone=self.settings.timezone, job_defaults=JOB_DEFAULTS)
        for name, trig in triggers(self.settings.timezone).items():
            # next_run_time=now: every sweep runs once at start — the catch-up after a restart
            first = {"next_run_time": datetime.now(UTC) + timedelta(seconds=1)} if catch_up else {}
            self.aps.add_job(self._scheduled, trig, args=[name], id=name, name=name, **first)
        self.aps.start(paused=True)
        if self.engine.dialect.name != "postgresql":
            self._become_leader()
        else:
            await self._try_lead()  # at once, so a single process leads from its first second
            self._leader_task = asyncio.create_task(self._lead())

    def _become_leader(self) -> None:
        self.is_leader = True
        log.info("scheduler: this process runs the sweeps")
        if self.catch_up:
            for job in self.aps.get_jobs():
                job.modify(next_run_time=datetime.now(UTC))  # catch up at once
        self.aps.resume()

    def _step_down(self) -> None:
        if self.is_leader:
            log.warning("scheduler: lost the leader lock; pausing sweeps")
        self.is_leader = False
        if self.aps is not None:
            self.aps.pause()

    async def _try_lead(self) -> None:
        try:
            if self._lock_conn is None:
                self._lock_conn = await self.engine.connect()
                got = (await self._lock_conn.execute(text("SELECT pg_try_advisory_lock(:k)"),
                                                     {"k": LOCK_KEY})).scalar()
                await self._lock_conn.commit()  # the session-level lock outlives the transaction
                if got:
                    self._become_leader()
                else:
                    await self._lock_conn.close()
                    self._lock_conn = None
            else:
                await self._lock_conn.execute(text("SELECT 1"))
                await self._lock_conn.commit()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("scheduler: leader lock connection failed")
            self._step_down()
            if self._lock_conn is not None:
                with contextlib.suppress(Exception):
                    await self._lock_conn.invalidate()
            self._lock_conn = None

    async def _lead(self) -> None:
        """Hold the advisory lock on a dedicated connection; check it stays alive."""
        while True:
            await asyncio.sleep(self.leader_retry)
            await self._try_lead()

    async def stop(self) -> None:
        if self._leader_task is not None:
            self._leader_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._leader_task
        if self.aps is not None and self.aps.running:
            self.aps.shutdown(wait=False)
        running = list(self._running)
        for task in running:
            task.cancel()  # its transaction rolls back; the next run does it again
        if running:
            await asyncio.wait(running, timeout=10)
        self._leader_task = None
        self.is_leader = False
        if self._lock_conn is not None:
            with contextlib.suppress(Exception):
                await self._lock_conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": LOCK_KEY})
                await self._lock_conn.close()
            self._lock_conn = None


def build(settings: Settings, sessionmaker: async_sessionmaker[AsyncSession], office=None) -> Scheduler:
    return Scheduler(settings, sessionmaker, office)
