"""/leave: validation, approval by the grid leader, A/B cover of reminders and new assignments."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from workflows import cases
from workflows.models import Case, CaseEvent
from workflows.routines.models import Leave

from .test_routines_world import World, local


@pytest.fixture
async def w(sessionmaker, clock) -> World:
    return await World(sessionmaker, clock).setup()


async def test_leave_approved_and_covered(w: World):
    d = w.desk
    await d.send("CY01-W1", "/leave 11-24 11-26 家中老人住院")
    assert "等待网格长审批" in await d.last_text("CY01-W1")
    ask = await d.last("p:CY01-L")
    assert "王网格员" in ask.text and "钱网格员 代岗" in ask.text and ask.labels() == ["批准", "不批准"]
    await d.press("CY01-W2", "批准", chat="p:CY01-L")  # a worker pressing the leader's button: refused
    async with w.sm() as s:
        assert (await s.execute(select(Leave.status))).scalar_one() == "pending"
    await d.press("CY01-L", "批准")
    async with w.sm() as s:
        assert (await s.execute(select(Leave.status))).scalar_one() == "approved"
    assert "由A/B岗 钱网格员 代岗" in (await w.texts("g:CY-01"))[-1]
    assert "由您（A/B岗）代岗" in await d.last_text("CY02-W1")
    # on leave: the patrol reminder goes to the partner, saying whom they cover
    r = await w.sweep("patrol_reminders", local(2026, 11, 24, 8, 45))
    assert r.counts["reminded"] == 3
    assert not any("【巡查提醒】" in t for t in await w.texts("p:CY01-W1"))
    partner = [t for t in await w.texts("p:CY02-W1") if "【巡查提醒】" in t]
    assert len(partner) == 2 and any("王网格员 请假，由您代岗" in t for t in partner)
    # a new assignment to the worker goes to the partner, with a note
    w.clock.set(local(2026, 11, 24, 10))
    case = await w.do(cases.report, reporter_id=None, category_id=w.cats["市政设施"], description="路灯坏了",
                      grid_id=w.nodes["CY-01"])
    await w.do(cases.dispatch, w.ids["CY01-L"], case.id, assignee_id=w.ids["CY01-W1"])
    async with w.sm() as s:
        c = await s.get(Case, case.id)
        ev = (await s.execute(select(CaseEvent).where(CaseEvent.case_id == case.id,
                                                      CaseEvent.action == "dispatched"))).scalar_one()
    assert c.assignee_id == w.ids["CY02-W1"] and "请假" in ev.note
    # the partner can check in for the worker's grid
    await d.send("CY02-W1", "/patrol")
    assert "（代岗）" in str((await d.last("p:CY02-W1")).labels())
    # after the leave, assignments go to the worker again
    w.clock.set(local(2026, 11, 27, 10))
    case2 = await w.do(cases.report, reporter_id=None, category_id=w.cats["市政设施"], description="又坏了",
                       grid_id=w.nodes["CY-01"])
    await w.do(cases.dispatch, w.ids["CY01-L"], case2.id, assignee_id=w.ids["CY01-W1"])
    assert (await w.case(case2.id)).assignee_id == w.ids["CY01-W1"]


async def test_leave_refused_with_reason(w: World):
    d = w.desk
    await d.send("CY01-W1", "/leave 2026-11-25 2026-11-25 私事")
    await d.press("CY01-L", "不批准")
    await d.send("CY01-L", "本周有检查，请改期")
    assert "未获批准：本周有检查，请改期" in await d.last_text("CY01-W1")
    async with w.sm() as s:
        assert (await s.execute(select(Leave.status))).scalar_one() == "refused"


async def test_bad_leave_requests_change_nothing(w: World):
    d = w.desk
    cases_ = [
        ("/leave 11-26 11-24 私事", "早于开始日期"),
        ("/leave 11-20 11-24 私事", "已经过去了"),
        ("/leave 11-25", "请写全"),
        ("/leave 25.11 26.11 私事", "日期格式不对"),
    ]
    for text, expect in cases_:
        await d.send("CY01-W1", text)
        assert expect in await d.last_text("CY01-W1"), text
    await d.send("CY01-W2", "/leave 11-25 11-26 私事")  # no A/B partner
    assert "A/B岗搭档" in await d.last_text("CY01-W2")
    await d.send("CY-C", "/leave 11-25 11-26 私事")  # not a worker
    assert "没有使用 /leave 的权限" in await d.last_text("CY-C")  # declared on the command (handlers.access)
    assert await w.count(Leave) == 0
    assert await w.texts("p:CY01-L") == []
    await d.send("CY01-W1", "/leave 11-25 11-26 私事")
    await d.send("CY01-W1", "/leave 11-26 11-28 私事")
    assert "已有请假申请" in await d.last_text("CY01-W1")
    assert await w.count(Leave) == 1
