"""The rollup equals the raw-event reference after every loop transition (the case-loop tests'
own flows: reopen, merge, move to another grid, escalation to a street, cards …), and after a rebuild."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from workflows import rollup
from workflows.context import Ctx
from workflows.models import Node
from workflows.routines.stats import Stats, grid_stats

from . import test_case_loop as loop

pytestmark = pytest.mark.demo

FLOWS = [name for name in dir(loop) if name.startswith("test_")]


async def _compare(sm, clock) -> None:
    day0 = rollup.local_day(clock.now() - timedelta(days=30))
    start = datetime.combine(day0, datetime.min.time(), tzinfo=rollup.STATS_ZONE)
    end = start + timedelta(days=90)
    async with sm() as s:
        nodes = list((await s.execute(select(Node))).scalars())
        for node in nodes:
            grids = list((await s.execute(await rollup.subtree_grids(s, node.id))).scalars())
            raw = Stats()
            for st in (await grid_stats(Ctx(session=s, clock=clock), grids, start, end)).values():
                raw += st
            assert asdict(await rollup.figures(s, node, start, end)) == asdict(raw), node.code


@pytest.mark.parametrize("flow", FLOWS)
async def test_rollup_matches_raw_after(flow, sessionmaker, clock):
    w = await loop.World(sessionmaker, clock).setup()
    await getattr(loop, flow)(w)
    await _compare(sessionmaker, clock)
    async with sessionmaker() as s, s.begin():
        await rollup.rebuild(s)
    await _compare(sessionmaker, clock)
