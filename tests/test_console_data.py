"""What the console's map, dashboard and health view are built from: scoped GeoJSON in the tile's
datum, a grid's card with phones masked by role, the dashboard's figures (the /stats function)
and who the bot cannot reach."""

from __future__ import annotations

from dataclasses import asdict
from datetime import timedelta

import pytest
from sqlalchemy import select

from workflows import accounts, cases, dashboard, geo, health, map_layers, rollup
from workflows.context import Ctx
from workflows.errors import NotFound
from workflows.i18n import T
from workflows.models import Account, Node
from workflows.routines import deadlines
from workflows.routines.reports import week_so_far
from workflows.scope import staff_paths

from .test_case_loop import World

pytestmark = pytest.mark.demo
CY_GRIDS = {"CY-01", "CY-02", "CY-03"}
WX_GRIDS = {"WX-01", "WX-02", "WX-03"}


async def scope(ctx: Ctx, person_id: int) -> list[str]:
    return await staff_paths(ctx, person_id)


@pytest.fixture
async def w(sessionmaker, clock) -> World:
    return await World(sessionmaker, clock).setup()


async def located(w: World, grid: str, lat: float, lon: float, category: str = "市政设施") -> object:
    return await w.report(grid=grid, category=category, latitude=lat, longitude=lon)


async def test_boundaries_are_those_of_the_viewers_scope_in_the_tiles_datum(w: World):
    async with w.sm() as s:
        ctx = Ctx(session=s, clock=w.clock)
        cy = await map_layers.grid_layer(ctx, await scope(ctx, w.ids["CY-L"]))
        wx = await map_layers.grid_layer(ctx, await scope(ctx, w.ids["WX-L"]))
        street = await map_layers.grid_layer(ctx, await scope(ctx, w.ids["XH-ZX1"]))
        grid_leader = await map_layers.grid_layer(ctx, await scope(ctx, w.ids["CY01-L"]))
        nobody = await map_layers.grid_layer(ctx, await scope(ctx, w.resident.id))
        gcj = await map_layers.grid_layer(ctx, await scope(ctx, w.ids["CY-L"]), "gcj02")
    codes = lambda fc: {f["properties"]["code"] for f in fc["features"]}  # noqa: E731
    assert codes(cy) == CY_GRIDS and codes(wx) == WX_GRIDS and codes(street) == CY_GRIDS | WX_GRIDS
    assert codes(grid_leader) == {"CY-01"} and nobody["features"] == []
    lon, lat = cy["features"][0]["geometry"]["coordinates"][0][0]
    glon, glat = gcj["features"][0]["geometry"]["coordinates"][0][0]
    assert (glat, glon) == pytest.approx(geo.from_wgs84(lat, lon, "gcj02"))
    assert abs(glon - lon) > 0.003  # Hangzhou's GCJ-02 offset is some 500 m: drawn where Amap's streets are


async def test_points_are_scoped_coloured_and_filtered(w: World):
    a = await located(w, "CY-01", 30.29, 120.105)
    b = await located(w, "WX-01", 30.275, 120.105)
    await w.report(grid="CY-02")  # no location: not on the map
    async with w.sm() as s:
        ctx = Ctx(session=s, clock=w.clock)
        cy = await map_layers.case_layer(ctx, await scope(ctx, w.ids["CY-L"]))
        street = await map_layers.case_layer(ctx, await scope(ctx, w.ids["XH-ZX1"]), "bd09")
    assert [f["properties"]["number"] for f in cy["features"]] == [a.number]
    assert {f["id"] for f in street["features"]} == {a.id, b.id}
    pt = next(f for f in street["features"] if f["id"] == a.id)
    assert pt["geometry"]["coordinates"][::-1] == pytest.approx(list(geo.from_wgs84(30.29, 120.105, "bd09")))
    p = pt["properties"]
    assert (p["status"], p["open"], p["overdue"], p["card"], p["grid"]) == ("reported", True, False, None, "翠苑第一网格")

    await w.do(cases.dispatch, w.ids["CY01-L"], a.id, assignee_id=w.ids["CY01-W1"])
    a = await w.fresh(a)
    async with w.sm() as s, s.begin():  # past the deadline by twice its span: the red card
        w.clock.set(a.registered_at + (a.deadline_at - a.registered_at) * 2 + timedelta(minutes=1))
        await deadlines.sweep(Ctx(session=s, clock=w.clock, channels=frozenset({"test"})))
    async with w.sm() as s:
        ctx = Ctx(session=s, clock=w.clock)
        props = (await map_layers.case_layer(ctx, await scope(ctx, w.ids["CY-L"])))["features"][0]["properties"]
        overdue = await map_layers.case_layer(ctx, await scope(ctx, w.ids["XH-ZX1"]), filters=map_layers.CaseFilter(overdue=True))
        red = await map_layers.case_layer(ctx, await scope(ctx, w.ids["XH-ZX1"]), filters=map_layers.CaseFilter(card="red"))
        closed = await map_layers.case_layer(ctx, await scope(ctx, w.ids["XH-ZX1"]), filters=map_layers.CaseFilter(status="closed"))
        in_wx = await map_layers.case_layer(ctx, await scope(ctx, w.ids["XH-ZX1"]),
                                            filters=map_layers.CaseFilter(node_ids=[w.nodes["WX"]]))
    assert props["overdue"] and props["card"] == "red" and props["status"] == "dispatched"
    assert [f["id"] for f in overdue["features"]] == [a.id] == [f["id"] for f in red["features"]]
    assert closed["features"] == [] and [f["id"] for f in in_wx["features"]] == [b.id]


async def test_a_grid_card_masks_phones_for_those_who_do_not_dispatch_there(w: World):
    t = T("zh_CN")
    async with w.sm() as s:
        ctx = Ctx(session=s, clock=w.clock)
        leader = await map_layers.grid_card(ctx, t, w.ids["CY-L"], await scope(ctx, w.ids["CY-L"]), w.nodes["CY-01"])
        worker = await map_layers.grid_card(ctx, t, w.ids["CY01-W1"], await scope(ctx, w.ids["CY01-W1"]), w.nodes["CY-01"])
        with pytest.raises(NotFound):
            await map_layers.grid_card(ctx, t, w.ids["WX-L"], await scope(ctx, w.ids["WX-L"]), w.nodes["CY-01"])
        with pytest.raises(NotFound):  # a community is not a grid card
            await map_layers.grid_card(ctx, t, w.ids["XH-ZX1"], await scope(ctx, w.ids["XH-ZX1"]), w.nodes["CY"])
    assert leader.full_phones and [p.phone for p in leader.leaders] == ["13800000007"]
    assert "13800000007" in leader.notice and leader.leaders[0].name == "张伟"
    assert not worker.full_phones and [p.phone for p in worker.leaders] == ["138****0007"]
    assert "13800000007" not in worker.notice and "138****0007" in worker.notice
    assert {p.name for p in worker.workers} == {"孙*", "马*"} and all(p.partner for p in worker.workers)


async def test_the_dashboard_has_the_figures_of_stats(w: World):
    start = w.clock.now()
    w.clock.set(start - timedelta(days=9))  # one case last week but one: in the trends, not in this week
    await w.report(grid="CY-03", category="噪音扰民")
    w.clock.set(start)
    await located(w, "CY-01", 30.29, 120.105)
    await w.report(grid="CY-02", category="环境卫生")
    c = await w.report(grid="WX-01", category="环境卫生")
    await w.do(cases.dispatch, w.ids["WX01-L"], c.id, assignee_id=w.ids["WX01-W1"])
    await w.do(cases.accept, w.ids["WX01-W1"], c.id)
    await w.do(cases.finish, w.ids["WX01-W1"], c.id, "已清理")
    await w.do(cases.verify, w.ids["WX01-L"], c.id, passed=True)
    w.clock.advance(hours=2)
    t = T("zh_CN")
    async with w.sm() as s:
        ctx = Ctx(session=s, clock=w.clock)
        xh = await s.get(Node, w.nodes["XH"])
        d = await dashboard.build(ctx, t, xh)
        _start, _end, stats_week, stats_rows = await week_so_far(ctx, xh)
        cy = await rollup.figures(s, await s.get(Node, w.nodes["CY"]), d.week_start, w.clock.now(), now=w.clock.now())
        now = w.clock.now()
        day = timedelta(days=1)
        each_day = [asdict(await rollup.figures(s, xh, rollup.midnight(x), rollup.midnight(x + day), now=now))
                    for x, _ in d.days]
        each_week = [asdict(await rollup.figures(s, xh, rollup.midnight(m), rollup.midnight(m + 7 * day), now=now))
                     for m, _ in d.weeks]
    assert asdict(d.week) == asdict(stats_week)
    assert [asdict(st) for _, st in d.days] == each_day and [asdict(st) for _, st in d.weeks] == each_week
    assert (d.today.reported, d.today.closed, d.overdue_now) == (3, 1, 0)
    assert d.days[-1][1].reported == 3 and sum(s.reported for _, s in d.days) == 4
    assert [s.reported for _, s in d.weeks][-3:] == [1, 0, 3] and len(d.weeks) == dashboard.TREND_WEEKS
    assert dict(d.categories) == {"环境卫生": 2, "市政设施": 1, "噪音扰民": 1}
    async with w.sm() as s:
        english = await dashboard.build(Ctx(session=s, clock=w.clock), T("en"), await s.get(Node, w.nodes["XH"]))
    assert dict(english.categories) == {"Environment and sanitation": 2, "Municipal facilities": 1,
                                        "Noise nuisance": 1}
    assert [r.node.code for r in d.ranking] == ["WX", "CY"]  # WX closed its case on time
    assert asdict(next(r for r in d.ranking if r.node.code == "CY").stats) == asdict(cy)
    charts = dashboard.chart_data(t, d)
    assert charts["ranking"]["on_time"] == [100.0, None] and sum(charts["days"]["reported"]) == 4


async def test_the_health_view_shows_who_cannot_be_reached(w: World):
    async with w.sm() as s, s.begin():
        ctx = Ctx(session=s, clock=w.clock, channels=frozenset({"test"}))
        w1 = w.ids["CY01-W1"]
        await accounts.unreachable(ctx, w1, "test", "p:CY01-W1", "Forbidden: bot was blocked by the user")
        acc = (await s.execute(select(Account).where(Account.person_id == w.ids["CY01-W2"]))).scalar_one()
        await s.delete(acc)
    async with w.sm() as s:
        ctx = Ctx(session=s, clock=w.clock)
        rows = await health.tree_health(ctx, w.ids["CY-L"], await scope(ctx, w.ids["CY-L"]), frozenset({"test"}))
        by_code = {h.node.code: h for h in rows}
        assert [h.node.code for h in rows][0] == "CY" and set(by_code) == {"CY"} | CY_GRIDS
        members = {m.code: m for m in by_code["CY-01"].members}
        assert members["CY01-W1"].unreachable == health.BLOCKED and "blocked" in members["CY01-W1"].errors[0]
        assert members["CY01-W2"].unreachable == health.NO_ACCOUNT
        assert members["CY01-L"].unreachable is None and members["CY01-L"].channels == ["test"]
        assert members["CY01-W1"].partner and members["CY01-L"].phone == "13800000007"
        assert by_code["CY-01"].has_group and by_code["CY-01"].unreachable == 2
        assert [h.depth for h in rows] == [0, 1, 1, 1]
        seen_by_worker = await health.tree_health(ctx, w.ids["CY01-W1"], await scope(ctx, w.ids["CY01-W1"]), frozenset({"test"}))
        assert [h.node.code for h in seen_by_worker] == ["CY-01"]
        assert {m.code: m.phone for m in seen_by_worker[0].members}["CY01-L"] == "138****0007"
        off_channel = await health.tree_health(ctx, w.ids["CY-L"], await scope(ctx, w.ids["CY-L"]), frozenset({"telegram"}))
        assert all(m.unreachable == health.NO_ACCOUNT for h in off_channel for m in h.members)


async def test_the_health_views_dispatch_rule_is_can_dispatch(w: World):
    """Phones are shown in full where the viewer dispatches: the path form agrees with the role walk."""
    from workflows.models import Assignment, Role
    from workflows.tree import can_dispatch

    async with w.sm() as s, s.begin():  # a stand-in too: dispatches at the node only
        s.add(Assignment(person_id=w.ids["CY01-W1"], node_id=w.nodes["CY-01"], role=Role.standin))
    async with w.sm() as s:
        ctx = Ctx(session=s, clock=w.clock)
        nodes = list((await s.execute(select(Node))).scalars())
        for code, pid in [*w.ids.items(), ("resident", w.resident.id)]:
            test = await health.dispatch_scope(ctx, pid)
            for node in nodes:
                assert test(node) == await can_dispatch(ctx, pid, node), (code, node.code)
