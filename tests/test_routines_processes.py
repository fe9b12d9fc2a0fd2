"""Several processes on one PostgreSQL database: every reminder and card exactly once.

Two real OS processes run `gridbot jobs run all --at …` at the same moment against the throwaway
server; then the advisory-lock leader election of the scheduler is checked, with fail-over.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bot.db import make_engine, make_sessionmaker
from bot.scheduler import Scheduler
from bot.settings import Settings
from workflows.clock import FixedClock
from workflows.models import Case, CaseDeadline, CaseEvent, Outbox
from workflows.routines.models import RoutineMark, SweepRun
from workflows.routines.sweeps import SWEEPS

from .conftest import _psql
from .test_routines_world import World, local

ROOT = Path(__file__).resolve().parents[1]
N_CASES = 3000


@pytest.fixture
async def pg_world(pg_server, pg_template, clock):
    name = f"mp{os.getpid()}_{int(time.time() * 1000) % 10_000_000}"
    _psql(pg_server, f"CREATE DATABASE {name} TEMPLATE {pg_template}")
    url = pg_server.url(name)
    engine = make_engine(url)
    w = await World(make_sessionmaker(engine), clock).setup()
    w.url = url
    yield w
    await engine.dispose()
    _psql(pg_server, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


async def _many_due_cases(w: World, n: int) -> datetime:
    reg = local(2026, 11, 20, 9)
    async with w.sm() as s, s.begin():
        cases = [Case(number=f"XH-20261120-{i:05d}", grid_id=w.nodes["CY-01"], level_node_id=w.nodes["CY-01"],
                      category_id=w.cats["市政设施"], description="x", status="in_progress",
                      assignee_id=w.ids["CY01-W1" if i % 2 else "CY01-W2"], created_at=reg, registered_at=reg,
                      deadline_at=reg + timedelta(hours=72), card_nodes=[], attachments=[], version=1)
                 for i in range(n)]
        s.add_all(cases)
        await s.flush()
        s.add_all(CaseDeadline(case_id=c.id, stage=0, next_check_at=reg + timedelta(hours=36)) for c in cases)
    return reg


async def test_two_processes_send_everything_once(pg_world: World):
    w = pg_world
    await _many_due_cases(w, N_CASES)
    start_at = time.time() + 4  # both start their sweeps at the same moment, after Python has loaded
    script = ("import sys, time; from bot.cli import main; "
              f"time.sleep(max(0, {start_at} - time.time())); "
              "sys.exit(main(['jobs', 'run', 'all', '--at', '2026-11-23 08:50', '--channels', 'test']))")
    env = {**os.environ, "DATABASE_URL": w.url, "LOG_LEVEL": "WARNING"}
    procs = [subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    for p, (_out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err
    async with w.sm() as s:
        # both processes ran every sweep …
        runs = dict((await s.execute(select(SweepRun.name, func.count()).group_by(SweepRun.name))).all())
        hosts = (await s.execute(select(func.count(func.distinct(SweepRun.host))))).scalar_one()
        # … and each case got exactly one card event and one message per recipient
        events = (await s.execute(select(CaseEvent.case_id, func.count()).where(CaseEvent.action == "remind_80")
                                  .group_by(CaseEvent.case_id))).all()
        remind_msgs = (await s.execute(select(func.count()).select_from(Outbox)
                                       .where(Outbox.dedupe_key.like("dl:%")))).scalar_one()
        patrol_msgs = (await s.execute(select(Outbox.person_id, func.count())
                                       .where(Outbox.dedupe_key.like("patrol_remind:%"))
                                       .group_by(Outbox.person_id))).all()
        marks = (await s.execute(select(func.count()).select_from(RoutineMark)
                                 .where(RoutineMark.kind == "patrol_remind"))).scalar_one()
        stages = (await s.execute(select(CaseDeadline.stage, func.count()).group_by(CaseDeadline.stage))).all()
    # (a sweep with lanes records a run per lane)
    assert runs == {name: 2 * SWEEPS[name].lanes for name in runs} and len(runs) == len(SWEEPS) and hosts == 2
    assert len(events) == N_CASES and all(n == 1 for _, n in events)
    assert remind_msgs == N_CASES
    assert sorted(n for _, n in patrol_msgs) == [1, 1, 1] and marks == 3
    assert stages == [(2, N_CASES)]  # caught up straight to the 80% reminder
    # the work was really shared or raced: both processes saw due cases or one skipped locked rows
    done = [line for out, _ in outs for line in out.splitlines() if '"deadlines"' in line]
    assert len(done) == 2


async def test_scheduler_leader_and_fail_over(pg_world: World):
    w = pg_world
    settings = Settings(database_url=w.url, timezone="Asia/Shanghai")
    clock = FixedClock(local(2026, 11, 23, 8, 50))
    engines = [make_engine(w.url) for _ in range(2)]
    scheds = [Scheduler(settings, make_sessionmaker(e), clock=clock, leader_retry=0.2) for e in engines]
    for sc in scheds:
        sc.channels = frozenset({"test"})
    try:
        await scheds[0].start()
        await asyncio.sleep(0.5)
        await scheds[1].start()
        await asyncio.sleep(0.5)
        assert scheds[0].is_leader and not scheds[1].is_leader
        # the leader ran every sweep once at start (catch-up); the follower ran none
        for _ in range(50):
            async with w.sm() as s:
                n = (await s.execute(select(func.count(func.distinct(SweepRun.name))))).scalar_one()
            if n == len(SWEEPS):
                break
            await asyncio.sleep(0.1)
        assert n == len(SWEEPS)
        assert await w.count(RoutineMark, RoutineMark.kind == "patrol_remind") == 3
        await scheds[0].stop()  # the leader goes away: its connection closes, the lock is free
        for _ in range(30):
            if scheds[1].is_leader:
                break
            await asyncio.sleep(0.1)
        assert scheds[1].is_leader
        await asyncio.sleep(1.5)
        # the new leader caught up at once, and sent nothing twice
        assert await w.count(RoutineMark, RoutineMark.kind == "patrol_remind") == 3
        assert len([t for t in await w.texts("p:CY01-W1") if "【巡查提醒】" in t]) == 1
    finally:
        for sc in scheds:
            await sc.stop()
        for e in engines:
            await e.dispose()


async def test_scheduler_on_sqlite_always_leads(sqlite_template, tmp_path, clock):
    """SQLite has no advisory lock and one process: it leads at once (PostgreSQL: the test above)."""
    import shutil

    shutil.copy(sqlite_template, tmp_path / "one.db")
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'one.db'}")
    sessionmaker = make_sessionmaker(engine)
    w = await World(sessionmaker, clock).setup()
    sc = Scheduler(Settings(database_url="sqlite://"), sessionmaker, clock=FixedClock(local(2026, 11, 23, 8, 50)))
    sc.channels = frozenset({"test"})
    await sc.start()
    try:
        assert sc.is_leader
        for _ in range(50):
            if await w.count(SweepRun) >= len(SWEEPS):
                break
            await asyncio.sleep(0.1)
        assert await w.count(SweepRun) == len(SWEEPS)
        jobs = {j.id: j for j in sc.aps.get_jobs()}
        assert set(jobs) == {"patrol_reminders", "patrol_missed", "deadlines", "weekly_reports",
                             "monthly_ranking", "screening", "housekeeping", "care_due", "care_overdue", "points"}
        assert all(j.coalesce and j.max_instances == 1 and j.misfire_grace_time for j in jobs.values())
    finally:
        await sc.stop()
        await engine.dispose()


def test_jobs_cli_list_and_run(tmp_path, sqlite_template):
    import shutil

    db = tmp_path / "cli.db"
    shutil.copy(sqlite_template, db)
    env = {**os.environ, "DATABASE_URL": f"sqlite+aiosqlite:///{db}", "LOG_LEVEL": "WARNING"}
    out = subprocess.run([sys.executable, "-m", "bot.cli", "jobs", "run", "deadlines", "--at", "2026-11-23 09:00"],
                         cwd=ROOT, env=env, capture_output=True, text=True, check=True).stdout
    assert '"sweep": "deadlines"' in out and '"as_of": "2026-11-23T09:00:00+08:00"' in out  # the local form --at takes
    out = subprocess.run([sys.executable, "-m", "bot.cli", "jobs", "list"], cwd=ROOT, env=env,
                         capture_output=True, text=True, check=True).stdout
    assert "patrol_reminders" in out and "deadlines" in out and "2026-11-23 09:00" in out
    bad = subprocess.run([sys.executable, "-m", "bot.cli", "jobs", "run", "nope"], cwd=ROOT, env=env,
                         capture_output=True, text=True)
    assert bad.returncode != 0 and "no sweep" in bad.stderr


