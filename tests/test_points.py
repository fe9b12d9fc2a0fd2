"""Points (积分): rules imported as data, points from registered reports and rated cases (derived
from the case events by the points sweep), /award with its caps, /points, the monthly ranking."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from workflows import cases, points
from workflows.care_models import PointEntry
from workflows.errors import Invalid, NotAllowed
from workflows.importer import ImportFailed, import_yaml
from workflows.models import Account, Case, Person

from .test_routines_world import CH, World, local

RULES = """
point_rules:
  - {code: report_registered, name: 有效上报, points: 5, daily_cap: 15, monthly_cap: 100}
  - {code: case_rated, name: 评价办理结果, points: 2}
  - {code: award, name: 志愿服务奖励, points: 10, daily_cap: 12, monthly_cap: 30}
"""


@pytest.fixture
async def w(sessionmaker, clock) -> World:
    world = await World(sessionmaker, clock).setup()
    async with sessionmaker() as s, s.begin():
        await import_yaml(s, RULES, "rules.yaml", now=clock.now())
        for key, name in (("R1", "李小明"), ("R2", "欧阳娜娜"), ("R3", "王芳")):
            p = Person(name=name, created_at=clock.now())
            s.add(p)
            await s.flush()
            s.add(Account(channel=CH, external_id=key, chat_id=f"p:{key}", person_id=p.id, created_at=clock.now()))
    async with sessionmaker() as s:
        rows = await s.execute(select(Account.external_id, Account.person_id).where(Account.external_id.like("R%")))
        world.residents = {k: pid for k, pid in rows}
    return world


async def balance(w: World, key: str) -> int:
    return await w.do(points.balance, w.residents[key])


async def report_and_register(ctx, w: World, reporter: str, register: bool = True):
    case = await cases.report(ctx, reporter_id=w.residents[reporter], category_id=w.cats["市政设施"],
                              description="路灯不亮", grid_id=w.nodes["CY-01"])
    if register:
        await cases.register(ctx, w.ids["CY01-L"], case.id)
    return case


async def test_registered_reports_earn_points_once_and_within_the_cap(w: World):
    for _ in range(4):
        await w.do(report_and_register, w, "R1")
    await w.do(report_and_register, w, "R2", register=False)  # not registered: nothing
    r = await w.sweep("points", local(2026, 11, 23, 9, 5))
    assert r.counts == {"report_registered": 3, "capped": 1}  # 5 + 5 + 5, the fourth is over the daily 15
    assert await balance(w, "R1") == 15 and await balance(w, "R2") == 0
    assert (await w.sweep("points", local(2026, 11, 23, 9, 10))).acted == 0  # each case pays once
    assert await balance(w, "R1") == 15
    # the ledger: one row per case, never an overwritten balance
    async with w.sm() as s:
        rows = (await s.execute(select(PointEntry.points, PointEntry.case_id).where(
            PointEntry.person_id == w.residents["R1"]).order_by(PointEntry.id))).all()
    assert [p for p, _ in rows] == [5, 5, 5, 0] and len({c for _, c in rows}) == 4
    # the next day the cap starts again
    w.clock.set(local(2026, 11, 24, 10))
    await w.do(report_and_register, w, "R1")
    assert (await w.sweep("points", local(2026, 11, 24, 10, 5))).counts == {"report_registered": 1}
    assert await balance(w, "R1") == 20


async def test_rated_case_earns_points(w: World):
    case = await w.do(report_and_register, w, "R3")
    async with w.sm() as s, s.begin():
        c = await s.get(Case, case.id)
        c.status = "closed"  # the loop's own tests walk dispatch → finish → verify; rating is what counts here
    await w.do(cases.rate, w.residents["R3"], case.id, "satisfied")
    r = await w.sweep("points", local(2026, 11, 23, 9, 30))
    assert r.counts == {"report_registered": 1, "case_rated": 1}
    assert await balance(w, "R3") == 7


async def test_award_by_a_leader_within_caps(w: World):
    d = w.desk
    pid = w.residents["R1"]
    await d.send("CY01-L", f"/award P{pid} 8 帮助清理楼道")
    assert "已为 李小明 奖励 8 分" in await d.last_text("CY01-L")
    assert "您获得 8 积分：帮助清理楼道" in await d.last_text("R1")
    # over the daily cap of 12: refused, nothing written
    await d.send("CY01-L", f"/award P{pid} 5 维持秩序")
    assert "超过积分上限" in await d.last_text("CY01-L") and "还能获得 4 分" in await d.last_text("CY01-L")
    await d.send("CY01-L", f"/award P{pid} 11 维持秩序")
    assert "一次最多奖励 10 分" in await d.last_text("CY01-L")
    await d.send("CY01-L", f"/award P{pid} abc 维持秩序")
    assert "积分必须是整数" in await d.last_text("CY01-L")
    await d.send("CY01-L", "/award P999999 3 维持秩序")
    assert "找不到 P999999" in await d.last_text("CY01-L")
    assert await balance(w, "R1") == 8
    # a worker may not award
    with pytest.raises(NotAllowed):
        await w.do(points.award, w.ids["CY01-W1"], f"P{pid}", "2", "帮忙")
    # the monthly cap (30) over several days
    for day, n in ((24, 10), (25, 10)):
        w.clock.set(local(2026, 11, day, 10))
        await w.do(points.award, w.ids["CY01-L"], f"P{pid}", str(n), "志愿服务")
    w.clock.set(local(2026, 11, 26, 10))
    with pytest.raises(Invalid):
        await w.do(points.award, w.ids["CY01-L"], f"P{pid}", "3", "志愿服务")
    assert await balance(w, "R1") == 28
    async with w.sm() as s:
        n = (await s.execute(select(func.count()).select_from(PointEntry).where(PointEntry.rule_code == "award"))
             ).scalar_one()
    assert n == 3


async def test_points_for_the_resident(w: World):
    await w.do(points.award, w.ids["CY01-L"], f"P{w.residents['R2']}", "6", "帮助独居老人买菜")
    await w.desk.send("R2", "/points")
    text = await w.desk.last_text("R2")
    assert "您的积分：6 分" in text and "+6 帮助独居老人买菜" in text
    await w.desk.send("R2", "/points 公开")
    assert "将显示您的姓名" in await w.desk.last_text("R2")


async def test_monthly_ranking_masks_names(w: World):
    for key, n in (("R1", 9), ("R2", 7), ("R3", 3)):
        await w.do(points.award, w.ids["CY01-L"], f"P{w.residents[key]}", str(n), "志愿服务")
    await w.do(points.award, w.ids["CY-C"], "CY01-W1", "5", "staff are not in the ranking")
    await w.do(points.set_show_name, w.residents["R3"], True)
    assert (await w.sweep("points", local(2026, 11, 30, 9))).acted == 0  # not the 1st yet
    r = await w.sweep("points", local(2026, 12, 1, 9))
    assert r.counts["rankings"] == 1  # CY (XH's community)
    texts = await w.texts("g:CY")
    assert len(texts) == 1
    text = texts[0]
    assert "2026-11" in text and "1. 李*明 9 分" in text and "2. 欧**娜 7 分" in text and "3. 王芳 3 分" in text
    assert "王网格员" not in text and "李小明" not in text
    assert (await w.sweep("points", local(2026, 12, 1, 10))).acted == 0
    assert len(await w.texts("g:CY")) == 1


def test_mask():
    assert [points.mask(n) for n in ("张伟", "李小明", "欧阳娜娜", "A")] == ["张*", "李*明", "欧**娜", "A"]


async def test_bad_rules_change_nothing(w: World):
    with pytest.raises(ImportFailed) as e:
        async with w.sm() as s, s.begin():
            await import_yaml(s, "point_rules:\n  - {code: x, name: y, points: many}\n", "r.yaml")
    assert "r.yaml:2" in str(e.value) and "points" in str(e.value)


async def test_staff_deductions_for_missed_patrols_when_the_office_wants_them(w: World):
    await w.sweep("patrol_missed", local(2026, 11, 23, 10, 0))  # nobody checked in at 09:00
    assert (await w.sweep("points", local(2026, 11, 23, 10, 5))).acted == 0  # no rule: no deduction
    async with w.sm() as s, s.begin():
        await import_yaml(s, "point_rules:\n  - {code: patrol_missed, name: 巡查未打卡, points: -2}\n", "d.yaml")
    r = await w.sweep("points", local(2026, 11, 23, 10, 10))
    assert r.counts == {"patrol_missed": 3}  # CY01-W1, CY01-W2, CY02-W1
    assert await w.do(points.balance, w.ids["CY01-W1"]) == -2
    assert (await w.sweep("points", local(2026, 11, 23, 10, 15))).acted == 0


async def test_red_card_deducts_from_the_assignee(w: World):
    async with w.sm() as s, s.begin():
        await import_yaml(s, "point_rules:\n  - {code: red_card, name: 红牌督办, points: -5}\n", "d.yaml")
    case = await w.do(report_and_register, w, "R1")
    await w.do(cases.dispatch, w.ids["CY01-L"], case.id, assignee_id=w.ids["CY01-W2"])
    await w.sweep("deadlines", local(2026, 11, 30, 12))  # 72 h limit, long past twice over: red card
    assert await w.events("red_card")
    r = await w.sweep("points", local(2026, 11, 30, 12, 5))
    assert r.counts["red_card"] == 1
    assert await w.do(points.balance, w.ids["CY01-W2"]) == -5
