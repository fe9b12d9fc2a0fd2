"""Visit coverage (走访按期率): one count (workflows/care_figures.py) read by /stats, the weekly
report, the monthly ranking and the 考核表 (tests/test_ledgers.py checks the sheet)."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import select

from workflows import care
from workflows.care_figures import visit_coverage
from workflows.care_models import CarePerson
from workflows.importer import import_yaml

from .test_care import REGISTER
from .test_routines_world import World, local


@pytest.fixture
async def w(sessionmaker, clock) -> World:
    world = await World(sessionmaker, clock).setup()
    async with sessionmaker() as s, s.begin():
        await import_yaml(s, REGISTER, "register.yaml", now=clock.now())
    async with sessionmaker() as s:
        world.care = {p.code: p.id for p in (await s.execute(select(CarePerson))).scalars()}
    return world


async def _visits(w: World) -> None:
    """P1 (due 11-23) on its day; P2 (due 11-25) a day late; P3 (due 11-30) not at home."""
    w.clock.set(local(2026, 11, 23, 10))
    await w.do(care.record_visit, w.ids["CY01-W1"], w.care["P1"], "fine")
    w.clock.set(local(2026, 11, 26, 9))
    await w.do(care.record_visit, w.ids["CY01-W1"], w.care["P2"], "fine")
    w.clock.set(local(2026, 11, 30, 10))
    await w.do(care.record_visit, w.ids["CY01-W2"], w.care["P3"], "absent")  # moves the due date, not counted


async def test_coverage_counts_on_time_late_missed_and_absent(w: World):
    await _visits(w)
    async with w.sm() as s:
        grids = [w.nodes["CY-01"], w.nodes["CY-02"]]
        # November, seen on 12-01: P1 11-23 on time, P2 11-25 late, P1's next (11-30) missed
        nov = await visit_coverage(s, grids, date(2026, 11, 1), date(2026, 11, 30), date(2026, 12, 1))
        assert nov == {w.nodes["CY-01"]: (3, 1)}
        by_worker = await visit_coverage(s, grids, date(2026, 11, 1), date(2026, 11, 30), date(2026, 12, 1), "worker")
        assert by_worker == {w.ids["CY01-W1"]: (3, 1)}
        # seen on 11-30 itself, P1's visit due that day can still be made: not counted yet
        assert (await visit_coverage(s, grids, date(2026, 11, 1), date(2026, 11, 30), date(2026, 11, 30))
                ) == {w.nodes["CY-01"]: (2, 1)}
        # P3's new due date (12-02) is open and past on 12-03
        assert (await visit_coverage(s, grids, date(2026, 12, 1), date(2026, 12, 7), date(2026, 12, 3), "worker")
                ) == {w.ids["CY01-W2"]: (1, 0)}
        with pytest.raises(ValueError):
            await visit_coverage(s, grids, date(2026, 12, 1), date(2026, 12, 7), date(2026, 12, 3), "street")


async def test_stats_weekly_report_and_ranking_show_coverage(w: World):
    w.clock.set(local(2026, 11, 23, 10))
    await w.do(care.record_visit, w.ids["CY01-W1"], w.care["P1"], "fine")
    w.clock.set(local(2026, 11, 26, 12))  # P2's day (11-25) has passed without a visit
    await w.desk.send("CY01-L", "/stats", group="CY-01")
    text = (await w.desk.last("g:CY-01")).text
    assert "关爱走访按期 1/2 次，走访按期率 50.0%" in text and "王网格员：走访按期 1/2" in text
    await w.desk.send("CY-C", "/stats", group="CY")  # the community: per grid in its ranking
    text = (await w.desk.last("g:CY")).text
    assert "关爱走访按期 1/2 次" in text and "翠苑一网格：得分" in text and "，走访按期 50.0%" in text

    await w.sweep("weekly_reports", local(2026, 11, 27, 17, 0))
    weekly = [t for t in await w.texts("g:CY-01") if "周报" in t][-1]
    assert "关爱走访按期 1/2 次，走访按期率 50.0%" in weekly and "王网格员：走访按期 1/2" in weekly
    other = [t for t in await w.texts("g:CY-02") if "周报" in t][-1]
    assert "走访" not in other  # nothing due there: no line

    w.clock.set(local(2026, 11, 30, 10))
    await w.do(care.record_visit, w.ids["CY01-W2"], w.care["P3"], "absent")
    await w.sweep("monthly_ranking", local(2026, 12, 1, 9, 0))
    ranking = (await w.texts("g:XH"))[-1]
    line = next(x for x in ranking.splitlines() if "翠苑一网格" in x)
    assert line.endswith("，走访按期 33.3%")  # P1 on time; P2 never visited; P1's second date missed
