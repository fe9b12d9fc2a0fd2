"""Care visits and points through every channel (terminal, both Telegram runtimes, WeChat Work),
on the demo street's register: a visit that needs help opens a case the group sees by household
code only; an award within the cap and one refused by it."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from workflows.care_models import CareVisit, PointEntry
from workflows.models import Case, Person

from .drivers import Driver
from .test_contract import GRID, LEADER, RESIDENT, WORKER, count, staffed

pytestmark = pytest.mark.demo
HOUSEHOLD = (30.2900, 120.1050)  # CY01-H01 in workflows/data/demo.yaml


async def test_visit_needing_help_opens_a_case(driver: Driver):
    d = driver
    await staffed(d)
    await d.say(WORKER, "/visit")
    await d.press(WORKER, "CY01-H01 王秀英 11-23")  # the demo was loaded on Monday 2026-11-23
    assert any("腿脚不便" in t for t in d.private_texts(WORKER)[-2:])
    await d.press(WORKER, "需要帮助")
    await d.say(WORKER, "厨房水管漏水，需要维修")
    await d.location(WORKER, *HOUSEHOLD)
    assert any("走访已登记：需要帮助" in t for t in d.private_texts(WORKER)[-2:]), d.private_texts(WORKER)[-3:]
    async with d.sm() as s:
        visit = (await s.execute(select(CareVisit))).scalar_one()
        case = await s.get(Case, visit.case_id)
    assert case.source == "visit" and visit.distance_m == pytest.approx(0, abs=1)
    group = d.group_texts(GRID)
    assert any(case.number in t and "CY01-H01" in t for t in group)
    assert not any("王秀英" in t or "独居" in t for t in group)


async def test_award_within_and_over_the_cap(driver: Driver):
    d = driver
    await staffed(d)
    await d.say(RESIDENT, "/points")
    shown = d.private_texts(RESIDENT)[-1]
    assert "您的积分：0 分" in shown, shown
    pid = int(re.search(r"P(\d+)", shown).group(1))  # the number a volunteer tells the leader
    async with d.sm() as s:
        name = (await s.get(Person, pid)).name
    await d.say(LEADER, f"/award P{pid} 15 帮助独居老人买菜")
    assert any(f"已为 {name} 奖励 15 分" in t for t in d.private_texts(LEADER)[-2:])
    assert any("您获得 15 积分" in t for t in d.private_texts(RESIDENT)[-2:])
    await d.say(LEADER, f"/award P{pid} 10 维持秩序")  # the demo's daily cap is 20
    assert any("超过积分上限" in t for t in d.private_texts(LEADER)[-1:])
    assert await count(d, PointEntry) == 1
