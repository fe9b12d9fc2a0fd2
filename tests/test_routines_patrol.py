"""Patrol reminders, missed patrols, the /patrol check-in dialogue and the diary."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from handlers.events import Inbound, Media
from workflows.models import Case
from workflows.routines.models import DiaryEntry, PatrolCheckin, RoutineMark, SweepRun

from .test_routines_world import CH, FAR, INSIDE, World, local


@pytest.fixture
async def w(sessionmaker, clock) -> World:
    return await World(sessionmaker, clock).setup()


async def send(w: World, user: str, text=None, **kw):
    return await w.desk.send(user, text, **kw)


async def test_reminder_15_minutes_before_once(w: World):
    # 08:44: too early
    r = await w.sweep("patrol_reminders", local(2026, 11, 23, 8, 44))
    assert r.counts == {}
    r = await w.sweep("patrol_reminders", local(2026, 11, 23, 8, 45))
    assert r.counts["reminded"] == 3  # CY01-W1, CY01-W2, CY02-W1 (CY-02 uses the default times)
    texts = await w.texts("p:CY01-W1")
    assert len(texts) == 1 and "翠苑一网格 09:00 的巡查即将开始" in texts[0]
    # the next minute and a repeat do nothing
    assert (await w.sweep("patrol_reminders", local(2026, 11, 23, 8, 46))).counts.get("reminded") is None
    assert (await w.sweep("patrol_reminders", local(2026, 11, 23, 8, 46))).acted == 0
    assert len(await w.texts("p:CY01-W1")) == 1
    # the grid without workers is a recorded warning, once a day; the other grids carried on
    assert await w.count(RoutineMark, RoutineMark.kind == "warn_no_workers") == 1
    async with w.sm() as s:
        runs = list((await s.execute(select(SweepRun).where(SweepRun.name == "patrol_reminders")
                                     .order_by(SweepRun.id))).scalars())
    assert any("翠苑三网格 没有网格员" in x for x in runs[1].result["warnings"])
    assert len(runs) == 4 and runs[-1].acted == 0


async def test_a_crowded_patrol_instant_is_reminded_early_enough_to_send(w: World):
    """A city's 09:00: when the reminders for one patrol instant take longer to send than the usual
    15 minutes allow, they start as much earlier as sending them takes (here 3 reminders at 0.01/s,
    6 min 15 s with the margin), so the last one still arrives 15 minutes ahead."""
    from workflows.routines import patrols

    assert patrols.sending_time(3, 0.01).total_seconds() == 375
    w.clock.set(local(2026, 11, 23, 8, 38))  # 09:00 − 15 min − 6 min 15 s = 08:38:45
    assert (await w.do(patrols.remind_sweep, rate=0.01)).counts == {}
    w.clock.set(local(2026, 11, 23, 8, 39))
    assert (await w.do(patrols.remind_sweep, rate=0.01)).counts["reminded"] == 3
    assert len(await w.texts("p:CY01-W1")) == 1
    w.clock.set(local(2026, 11, 23, 8, 45))
    assert (await w.do(patrols.remind_sweep, rate=0.01)).acted == 0  # once, as ever
    # at the real rate three reminders need no head start: 08:44 is still too early
    w.clock.set(local(2026, 11, 23, 14, 44))
    assert (await w.do(patrols.remind_sweep)).counts == {}


async def test_restart_catch_up_runs_once(w: World):
    # the process was down from 08:40 to 08:58: the first run after restart still reminds, once
    r = await w.sweep("patrol_reminders", local(2026, 11, 23, 8, 58))
    assert r.counts["reminded"] == 3
    r = await w.sweep("patrol_reminders", local(2026, 11, 23, 8, 59))
    assert r.acted == 0
    # after the patrol started a reminder is pointless: the missed-patrol sweep takes over
    assert (await w.sweep("patrol_reminders", local(2026, 11, 23, 9, 5))).acted == 0


async def test_missed_patrol_worker_then_group(w: World):
    await w.sweep("patrol_reminders", local(2026, 11, 23, 8, 45))
    # W2 checks in before 09:30
    w.clock.set(local(2026, 11, 23, 9, 10))
    await w.do(_checkin, w.ids["CY01-W2"], w.nodes["CY-01"])
    assert (await w.sweep("patrol_missed", local(2026, 11, 23, 9, 29))).acted == 0
    r = await w.sweep("patrol_missed", local(2026, 11, 23, 9, 30))
    assert r.counts["missed_30"] == 2  # CY01-W1 and CY02-W1
    assert "还没有收到您的打卡" in (await w.texts("p:CY01-W1"))[-1]
    assert not any("打卡" in t for t in (await w.texts("p:CY01-W2"))[1:])
    assert (await w.sweep("patrol_missed", local(2026, 11, 23, 9, 45))).acted == 0
    r = await w.sweep("patrol_missed", local(2026, 11, 23, 10, 0))
    assert r.counts["missed_60"] == 2
    group = await w.texts("g:CY-01")
    assert len(group) == 1 and "王网格员" in group[0] and "赵网格员" not in group[0]
    assert (await w.sweep("patrol_missed", local(2026, 11, 23, 10, 1))).acted == 0


async def _checkin(ctx, person_id, node_id, **kw):
    from workflows.routines.patrols import record_checkin

    return await record_checkin(ctx, person_id, node_id, answers=[], **kw)


async def test_patrol_dialogue_with_a_finding(w: World):
    w.clock.set(local(2026, 11, 23, 9, 5))
    d = w.desk
    await send(w, "CY01-W1", "/patrol")
    assert "请先发送您当前的位置" in await d.last_text("CY01-W1")
    await send(w, "CY01-W1", "我在网格里")  # text instead of a location: re-ask
    assert "请发送位置消息" in await d.last_text("CY01-W1")
    await send(w, "CY01-W1", location=INSIDE)
    assert "第 1/5 项：消防通道" in await d.last_text("CY01-W1")
    await send(w, "CY01-W1", "还行吧")  # not a choice
    texts = [m.text for m in (await d.messages("p:CY01-W1"))[-2:]]
    assert "请回答「正常」或「有问题」" in texts[0] and "第 1/5 项" in texts[1]
    await d.press("CY01-W1", "正常")
    await send(w, "CY01-W1", "正常")  # typed answers work too
    assert "第 3/5 项：占道经营" in await d.last_text("CY01-W1")
    await d.press("CY01-W1", "有问题")
    await send(w, "CY01-W1", "小区东门有流动摊贩占用人行道")
    for _ in range(2):
        await d.press("CY01-W1", "正常")
    assert "1 项有问题" in await d.last_text("CY01-W1")
    await d.photo("CY01-W1", "p1")
    await d.press("CY01-W1", "提交")
    last = await d.last_text("CY01-W1")
    assert "巡查打卡成功：2026-11-23 09:00" in last and "已登记为事件" in last
    async with w.sm() as s:
        c = (await s.execute(select(PatrolCheckin))).scalar_one()
        case = (await s.execute(select(Case))).scalar_one()
    assert c.warning is None and c.distance_m == 0 and len(c.answers) == 5 and c.photos
    assert case.source == "patrol" and "占道经营" in case.description and case.reporter_id == w.ids["CY01-W1"]
    # the 09:00 patrol is done: no missed reminder for W1
    r = await w.sweep("patrol_missed", local(2026, 11, 23, 9, 30))
    assert r.counts["missed_30"] == 2 and not any("还没有收到" in t for t in await w.texts("p:CY01-W1"))


async def test_patrol_far_from_the_grid_is_a_recorded_warning(w: World):
    w.clock.set(local(2026, 11, 23, 15, 2))
    d = w.desk
    await send(w, "CY01-W1", "/patrol")
    await send(w, "CY01-W1", location=FAR)
    assert "不在网格范围内" in (await d.messages("p:CY01-W1"))[-2].text
    for _ in range(5):
        await d.press("CY01-W1", "正常")
    await d.press("CY01-W1", "提交")
    assert "已记录提示" in await d.last_text("CY01-W1")
    async with w.sm() as s:
        c = (await s.execute(select(PatrolCheckin))).scalar_one()
    assert c.slot == "15:00" and c.distance_m > 2000 and "米" in c.warning


async def test_patrol_refused_to_non_workers(w: World):
    await send(w, "CY-C", "/patrol")
    assert "没有使用 /patrol 的权限" in await w.desk.last_text("CY-C")  # declared on the command (handlers.access)


async def test_diary(w: World):
    d = w.desk
    await send(w, "CY01-W1", "/diary")
    assert "还没有写过" in await d.last_text("CY01-W1")
    await send(w, "CY01-W1", "/diary 走访独居老人李奶奶，身体还好")
    assert "已记下" in await d.last_text("CY01-W1")
    await send(w, "CY01-W1", "/diary")
    assert "走访独居老人" in await d.last_text("CY01-W1")
    assert await w.count(DiaryEntry) == 1


async def test_photo_during_items_is_kept(w: World):
    w.clock.set(local(2026, 11, 23, 9, 1))
    d = w.desk
    await send(w, "CY01-W1", "/patrol")
    await d.press("CY01-W1", "无法定位")
    await w.desk.office.handle(Inbound(channel=CH, chat_id="p:CY01-W1", user_id="CY01-W1", event_id="ph1",
                                       media=[Media(kind="photo", ref="x", channel=CH)]))
    assert "第 1/5 项" in await d.last_text("CY01-W1")
