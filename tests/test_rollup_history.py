"""The rollup against the raw reference on a generated history (windows with whole and partial
days, every node, every grid), after patrol check-ins and missed patrols, and the node paths
the subtree sums rely on (insert, move, import); `gridbot stats rebuild`."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from workflows import rollup, tree
from workflows.context import Ctx
from workflows.models import Node
from workflows.routines.stats import Stats, raw_figures

from . import test_routines_patrol as patrol
from .history import SH, Shape, build
from .test_routines_world import World

NOW = datetime(2026, 11, 27, 15, 30, tzinfo=SH)


async def _subtree_ids(s, node_id: int) -> list[int]:
    return list((await s.execute(await rollup.subtree_grids(s, node_id))).scalars())


async def _compare_all(sm, start: datetime, end: datetime, now: datetime | None = None) -> None:
    async with sm() as s:
        for node in (await s.execute(select(Node).order_by(Node.id))).scalars():
            grids = await _subtree_ids(s, node.id)
            raw = (await raw_figures(s, grids, start, end, by_grid=False)).get(0) or Stats()
            got = await rollup.figures(s, node, start, end, now=now)
            assert asdict(got) == asdict(raw), (node.code, start, end)


async def _compare_children(sm, start: datetime, end: datetime, now: datetime | None = None) -> None:
    """Each node's figures by child (a city's /stats by district) equal each child's own figures."""
    counted = 0
    async with sm() as s:
        for node in (await s.execute(select(Node).where(Node.level.not_in(["grid"])).order_by(Node.id))).scalars():
            kids = (await s.execute(select(Node).where(Node.parent_id == node.id))).scalars().all()
            got = await rollup.figures_by_child(s, node, start, end, now=now)
            want = {k.id: asdict(await rollup.figures(s, k, start, end, now=now)) for k in kids}
            assert {k: asdict(got.get(k) or Stats()) for k in want} == want, (node.code, start, end)
            assert set(got) <= set(want)
            counted += sum(st.reported for st in got.values())
    assert counted


async def test_rollup_equals_raw_on_generated_history(engine, sessionmaker):
    async with engine.begin() as c:
        built = await build(c, Shape(fanout=(2, 2, 2, 3), cases=1500, days=40, missed_share=0.2), NOW)
    assert built.counts["checkins"] > 500 and built.counts["missed"] > 100
    async with sessionmaker() as s, s.begin():
        assert await rollup.rebuild(s) == 1500
    day0 = datetime(2026, 11, 1, tzinfo=SH)
    windows = [
        (day0, day0 + timedelta(days=7)),  # whole days only
        (day0 - timedelta(days=30), NOW),  # whole days and today so far
        (day0 + timedelta(hours=13, minutes=7), day0 + timedelta(days=9, hours=17)),  # partial at both ends
        (day0 + timedelta(hours=8), day0 + timedelta(hours=20)),  # inside one day
        (NOW - timedelta(days=60), NOW + timedelta(days=1)),  # the whole history
    ]
    for start, end in windows:
        await _compare_all(sessionmaker, start, end)
    # "so far": a window up to now is read as today's row (nothing in the history is after NOW)
    await _compare_all(sessionmaker, day0 + timedelta(days=20), NOW, now=NOW)
    await _compare_children(sessionmaker, day0 + timedelta(days=20), NOW, now=NOW)
    for start, end in windows[2:4]:  # partial days, counted from the raw rows and added up per child
        await _compare_children(sessionmaker, start, end)
    # every grid's own figures, as the weekly report and the ranking read them
    start, end = windows[2]
    async with sessionmaker() as s:
        per = await rollup.figures_by_grid(s, None, start, end)
        raw = await raw_figures(s, built.nodes["grid"], start, end)
        assert per and {g: asdict(st) for g, st in per.items()} == {g: asdict(st) for g, st in raw.items()}
        city = await s.get(Node, built.nodes["city"][0])
        total = await rollup.figures(s, city, start, end)
        assert total.reported > 0 and total.yellow > 0 and total.patrols_done > 0 and total.patrols_missed > 0


@pytest.mark.parametrize("flow", ["test_missed_patrol_worker_then_group", "test_patrol_dialogue_with_a_finding"])
async def test_rollup_counts_patrols_as_they_happen(flow, sessionmaker, clock):
    w = await World(sessionmaker, clock).setup()
    await getattr(patrol, flow)(w)
    day0 = datetime(2026, 11, 23, tzinfo=SH)
    async with sessionmaker() as s:
        street = (await s.execute(select(Node).where(Node.code == "XH"))).scalar_one()
        st = await rollup.figures(s, street, day0, day0 + timedelta(days=1))
    assert st.patrols_done >= 1
    if flow == "test_missed_patrol_worker_then_group":
        assert st.patrols_missed == 2
    await _compare_all(sessionmaker, day0, day0 + timedelta(days=1))
    async with sessionmaker() as s, s.begin():
        await rollup.rebuild(s)
    await _compare_all(sessionmaker, day0, day0 + timedelta(days=1))


async def test_paths_follow_inserts_and_moves(sessionmaker):
    async with sessionmaker() as s, s.begin():
        a = Node(code="A_1", name="甲街道", level="street")
        b = Node(code="B%1", name="乙街道", level="street")
        s.add_all([a, b])
        await s.flush()
        c = Node(code="C", name="社区", level="community", parent_id=a.id)
        s.add(c)
        await s.flush()
        g = Node(code="G", name="网格", level="grid", parent_id=c.id)
        s.add(g)
        await s.flush()
        assert g.path == f"/{a.id}/{c.id}/{g.id}/"
        ids = {k: n.id for k, n in {"a": a, "b": b, "c": c, "g": g}.items()}
    async with sessionmaker() as s, s.begin():
        c = await s.get(Node, ids["c"])
        c.parent_id = ids["b"]  # the community moves to the other street, its grid with it
    async with sessionmaker() as s:
        paths = dict((await s.execute(select(Node.code, Node.path))).all())
        assert paths["G"] == f"/{ids['b']}/{ids['c']}/{ids['g']}/"
        assert paths["C"] == f"/{ids['b']}/{ids['c']}/"
        assert await _subtree_ids(s, ids["a"]) == []
        assert await _subtree_ids(s, ids["b"]) == [ids["g"]]
        below = await tree.descendants(Ctx(session=s), ids["b"])
        assert [n.code for n in below] == ["C", "G"]


@pytest.mark.demo
async def test_import_keeps_paths(sessionmaker):
    async with sessionmaker() as s:
        rows = (await s.execute(select(Node.id, Node.parent_id, Node.path))).all()
    by_id = {r.id: r for r in rows}
    assert rows
    for r in rows:
        parent = by_id.get(r.parent_id)
        assert r.path == (parent.path if parent else "/") + f"{r.id}/"


def test_stats_rebuild_command(tmp_path, monkeypatch, capsys):
    from bot import cli

    monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path}/g.db")
    assert cli.main(["db", "upgrade"]) == 0
    assert cli.main(["demo"]) == 0
    capsys.readouterr()
    assert cli.main(["stats", "rebuild"]) == 0
    assert "rollup rebuilt from" in capsys.readouterr().out


async def test_nodes_loaded_by_raw_sql_get_their_paths_when_first_asked(sessionmaker):
    from sqlalchemy import text

    async with sessionmaker() as s, s.begin():  # as the older bulk loaders do: no path column
        await s.execute(text("INSERT INTO node (code, name, level) VALUES ('ST', 'street', 'street')"))
        await s.execute(text("INSERT INTO node (code, name, level, parent_id) "
                             "SELECT 'G' || n, 'grid', 'grid', (SELECT id FROM node WHERE code = 'ST') "
                             "FROM (SELECT 1 AS n UNION ALL SELECT 2) AS k"))
    async with sessionmaker() as s, s.begin():
        street = (await s.execute(select(Node).where(Node.code == "ST"))).scalar_one()
        below = await tree.descendants(Ctx(session=s), street.id)
        assert sorted(n.code for n in below) == ["G1", "G2"]
        assert len(await _subtree_ids(s, street.id)) == 2
