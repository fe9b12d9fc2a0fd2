"""The registry of named sweeps and the runner that records each run.

Every sweep is `async def sweep(ctx) -> SweepResult`; `run_sweep` opens one transaction, calls
it with a Ctx whose clock says "now", writes a sweep_run row with what it did, and commits. A
sweep that fails is rolled back as a whole and its failure is recorded in a row of its own.

A sweep with lanes (the deadline sweep) runs that many transactions at once on PostgreSQL, each
over its share of the grids (`lane=(i, n)`), so the database works on one batch while Python
composes the other; SQLite has one writer and runs one lane.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import socket
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ..clock import Clock, SystemClock
from ..context import Ctx
from . import collector, deadlines, housekeeping, patrols, reports, screening, visits
from .common import SweepResult
from .models import SweepRun
from .points_sweep import sweep as points_sweep

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Sweep:
    name: str
    fn: Callable[[Ctx], Awaitable[SweepResult]]
    every_seconds: int
    summary: str
    repeat_while_full: bool = False  # deadlines: run again while a batch came back full
    lanes: int = 1  # transactions at once on PostgreSQL, each given lane=(i, lanes)


SWEEPS: dict[str, Sweep] = {s.name: s for s in [
    Sweep("patrol_reminders", patrols.remind_sweep, 60, "巡查前 15 分钟提醒在岗网格员（请假时提醒A/B岗；同一时刻巡查的网格很多时，按发送所需时间提前）"),
    Sweep("patrol_missed", patrols.missed_sweep, 60, "巡查 30 分钟未打卡提醒本人，60 分钟告知网格群"),
    Sweep("deadlines", deadlines.sweep, 60, "办结时限：50%/80% 催办，到期黄牌，超一倍红牌并督办",
          repeat_while_full=True, lanes=deadlines.LANES),
    Sweep("weekly_reports", reports.weekly_sweep, 300, "每周五 17:00 向各网格群发送周报"),
    Sweep("monthly_ranking", reports.monthly_sweep, 600, "每月 1 日 09:00 向各街道群发送网格考核排名"),
    Sweep("screening", screening.sweep, 300, "矛盾纠纷/安全隐患周排查、街道半月排查、月度消防检查提醒"),
    Sweep("care_due", visits.due_sweep, 300, "应访当天早上把本周的走访名单发给网格员（请假时发给A/B岗）"),
    Sweep("care_overdue", visits.overdue_sweep, 300, "走访逾期次日提醒网格员，逾期 3 天告知网格长"),
    Sweep("points", points_sweep, 300, "按积分规则为已立案的上报和已评价的事件记积分；每月 1 日向各社区群发送积分排名"),
    Sweep("housekeeping", housekeeping.sweep, 3600, "清理过期按钮、已处理事件编号和长期未完成的对话"),
]}

HOST = f"{socket.gethostname()}:{os.getpid()}"


def make_ctx(session: AsyncSession, clock: Clock, **kw) -> Ctx:
    return Ctx(session=session, clock=clock, **kw)


async def run_sweep(sessionmaker: async_sessionmaker[AsyncSession], name: str, *, clock: Clock | None = None,
                    channels: frozenset[str] = frozenset({"terminal"}), language: str = "zh_CN",
                    timezone: str = "Asia/Shanghai") -> SweepResult:
    sweep = SWEEPS[name]
    clock = clock or SystemClock()
    lanes = sweep.lanes if sweep.lanes > 1 and _dialect(sessionmaker) == "postgresql" else 1
    if lanes == 1:
        return await _run_lane(sessionmaker, sweep, sweep.fn, clock, channels, language, timezone)
    # each lane starts when the one before has read and locked its first batch: the lanes' reading
    # and writing then alternate instead of coinciding (12.5 s against 10.2 s for a 200,000 burst)
    started = [asyncio.Event() for _ in range(lanes)]

    async def lane(i: int) -> SweepResult:
        if i:
            await started[i - 1].wait()
        fn = functools.partial(sweep.fn, lane=(i, lanes), claimed=started[i].set)
        try:
            return await _run_lane(sessionmaker, sweep, fn, clock, channels, language, timezone)
        finally:
            started[i].set()  # failed or found nothing: the next lane still runs

    total = SweepResult()
    results = await asyncio.gather(*[lane(i) for i in range(lanes)], return_exceptions=True)
    for result in results:  # every lane has finished (committed or rolled back) before a failure is raised
        if isinstance(result, BaseException):
            raise result
        total.merge(result)
    return total


def _dialect(sessionmaker: async_sessionmaker[AsyncSession]) -> str:
    bind = sessionmaker.kw.get("bind")
    return bind.dialect.name if bind is not None else ""


async def _run_lane(sessionmaker: async_sessionmaker[AsyncSession], sweep: Sweep,
                    fn: Callable[[Ctx], Awaitable[SweepResult]], clock: Clock, channels: frozenset[str],
                    language: str, timezone: str) -> SweepResult:
    name = sweep.name
    total = SweepResult()
    while True:
        started = SystemClock().now()
        try:
            async with sessionmaker() as session, session.begin():
                ctx = Ctx(session=session, clock=clock, channels=channels, language=language, timezone=timezone)
                with collector.held_off():  # a burst's objects are freed by reference counting
                    result = await fn(ctx)
                session.add(SweepRun(name=name, as_of=clock.now(), started_at=started,
                                     finished_at=SystemClock().now(), host=HOST, acted=result.acted,
                                     result=result.as_dict()))
        except Exception as e:
            log.exception("sweep %s failed", name)
            async with sessionmaker() as session, session.begin():
                session.add(SweepRun(name=name, as_of=clock.now(), started_at=started,
                                     finished_at=SystemClock().now(), host=HOST, acted=0, result={},
                                     error="".join(traceback.format_exception_only(e)).strip()[:2000]))
            raise
        total.merge(result)
        for w in result.warnings:
            log.warning("sweep %s: %s", name, w)
        if not (sweep.repeat_while_full and result.counts.get("due", 0) >= deadlines.BATCH):
            return total
