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


# --- each transition moves the figures where the raw rows say, not only "rollup == raw" ---------

async def _figs(w, code: str) -> Stats:
    start = datetime(2026, 11, 20, tzinfo=rollup.STATS_ZONE)  # the worlds start on 2026-11-23
    async with w.sm() as s:
        node = await s.get(Node, w.nodes[code])
        return await rollup.figures(s, node, start, start + timedelta(days=30))


@pytest.fixture
async def w(sessionmaker, clock):
    return await loop.World(sessionmaker, clock).setup()


async def test_reopen_takes_the_close_back(w):
    case = await w.report()
    await loop._close(w, case)
    assert (await _figs(w, "CY-01")).closed == 1
    await w.do(loop.cases.rate, w.resident.id, case.id, "unsatisfied", "没修好")
    st = await _figs(w, "CY-01")
    assert (st.closed, st.registered, st.registered_closed, st.rated) == (0, 1, 0, 0)
    await loop._close(w, case)
    await w.do(loop.cases.rate, w.resident.id, case.id, "satisfied")
    st = await _figs(w, "XH")
    assert (st.closed, st.rated, st.satisfied, st.reported) == (1, 1, 1, 1)
    await _compare(w.sm, w.clock)


async def test_merge_keeps_the_report_and_closes_only_the_main_case(w):
    main = await w.report()
    dup = await w.report(text="同一盏路灯")
    await w.do(loop.cases.merge, w.ids[loop.L], dup.id, main.number, "重复")
    await loop._close(w, main)
    st = await _figs(w, "CY-01")
    assert (st.reported, st.closed) == (2, 1)
    await _compare(w.sm, w.clock)


async def test_move_to_another_grid_moves_every_figure(w):
    case = await w.report()
    await w.do(loop.cases.register, w.ids[loop.L], case.id)
    assert ((await _figs(w, "CY-01")).registered, (await _figs(w, "CY-02")).registered) == (1, 0)
    await w.do(loop.cases.move_grid, w.ids[loop.L], case.id, w.nodes["CY-02"], "不属于本网格")
    one, two, community = await _figs(w, "CY-01"), await _figs(w, "CY-02"), await _figs(w, "CY")
    assert (one.reported, one.registered) == (0, 0)
    assert (two.reported, two.registered) == (1, 1)
    assert (community.reported, community.registered) == (1, 1)
    await _compare(w.sm, w.clock)


async def test_case_escalated_to_the_street_still_counts_for_its_grid_and_cards_too(w):
    from workflows.routines.sweeps import run_sweep

    from .test_case_loop import _leader_of

    case = await w.report()
    await w.do(loop.cases.escalate, w.ids[loop.L], case.id, "需要社区协调")
    await w.do(loop.cases.escalate, await _leader_of(w, "CY"), case.id, "需要街道协调")
    case = await w.fresh(case)
    assert case.level_node_id == w.nodes["XH"]
    street = await _leader_of(w, "XH")
    await w.do(loop.cases.dispatch, street, case.id, team_id=w.teams["T-CG"])
    case = await w.fresh(case)
    # past the deadline and past double the time limit: a yellow, then a red card
    for at in (case.deadline_at + timedelta(minutes=1),
               case.deadline_at + (case.deadline_at - case.registered_at) + timedelta(minutes=2)):
        w.clock.set(at)
        await run_sweep(w.sm, "deadlines", clock=w.clock, channels=frozenset({"test"}))
    assert (await w.events(case)).count("yellow_card") == 1
    grid, street_st = await _figs(w, "CY-01"), await _figs(w, "XH")
    assert (grid.reported, grid.yellow) == (1, 1) and street_st.yellow == 1
    assert grid.red == (await w.events(case)).count("red_card") == 1
    await _compare(w.sm, w.clock)


async def test_a_card_from_the_sweep_moves_with_the_case(w):
    from workflows.routines.sweeps import run_sweep

    case = await w.report()
    await w.do(loop.cases.register, w.ids[loop.L], case.id)
    case = await w.fresh(case)
    w.clock.set(case.deadline_at + timedelta(minutes=1))
    await run_sweep(w.sm, "deadlines", clock=w.clock, channels=frozenset({"test"}))
    assert ((await _figs(w, "CY-01")).yellow, (await _figs(w, "CY-02")).yellow) == (1, 0)
    # the card's contribution was added set-based: the next event recomputes the case from its rows
    await w.do(loop.cases.move_grid, w.ids[loop.L], case.id, w.nodes["CY-02"], "不属于本网格")
    one, two = await _figs(w, "CY-01"), await _figs(w, "CY-02")
    assert (one.yellow, one.reported, two.yellow, two.reported) == (0, 0, 1, 1)
    await _compare(w.sm, w.clock)
