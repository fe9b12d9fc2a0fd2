"""Weekly reports, the monthly ranking, /stats, screening reminders and records, /notice."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from workflows import cases
from workflows.models import Outbox
from workflows.outbox import BULK
from workflows.routines.models import Notice, ScreeningRecord

from .test_routines_world import World, local


@pytest.fixture
async def w(sessionmaker, clock) -> World:
    return await World(sessionmaker, clock).setup()


async def _history(w: World):
    """A week of work in CY-01: one case closed on time and rated, one overdue with a yellow card."""
    good = await w.do(cases.report, reporter_id=None, category_id=w.cats["市政设施"], description="路灯",
                      grid_id=w.nodes["CY-01"])
    await w.do(cases.dispatch, w.ids["CY01-L"], good.id, assignee_id=w.ids["CY01-W1"])
    await w.do(cases.accept, w.ids["CY01-W1"], good.id)
    await w.do(cases.finish, w.ids["CY01-W1"], good.id, "已修复")
    await w.do(cases.verify, w.ids["CY01-L"], good.id, passed=True)
    late = await w.do(cases.report, reporter_id=None, category_id=w.cats["消防安全隐患"], description="通道堵塞",
                      grid_id=w.nodes["CY-01"])
    await w.do(cases.dispatch, w.ids["CY01-L"], late.id, assignee_id=w.ids["CY01-W2"])
    await w.sweep("deadlines", w.clock.now() + timedelta(hours=25))
    w.clock.set(local(2026, 11, 23, 9, 10))
    from workflows.routines.patrols import record_checkin

    await w.do(record_checkin, w.ids["CY01-W1"], w.nodes["CY-01"], answers=[])


async def test_weekly_report_friday_17_once(w: World, media_store):
    await _history(w)
    assert (await w.sweep("weekly_reports", local(2026, 11, 27, 16, 59))).acted == 0
    r = await w.sweep("weekly_reports", local(2026, 11, 27, 17, 0))
    assert r.counts["reports"] == 2  # CY-01, CY-02; CY-03 has no group: a warning
    assert any("翠苑三网格 没有绑定工作群" in x for x in r.warnings)
    async with w.sm() as s:
        row = (await s.execute(select(Outbox).where(Outbox.chat_id == "g:CY-01",
                                                    Outbox.dedupe_key.like("weekly_report:%")))).scalar_one()
    text = row.payload["text"]
    assert "翠苑一网格 周报" in text and "上报 2 件，立案 2 件，结案 1 件" in text
    assert "按期处置率 100.0%" in text and "结案率 50.0%" in text and "黄牌 1 张" in text
    assert "巡查完成 1 次" in text
    media = row.payload["media"][0]
    assert media["kind"] == "photo" and (await media_store.get(media["sha256"]))[:4] == b"\x89PNG"
    assert row.priority == BULK  # behind replies and cards
    # paced: the reports become due REPORT_PACE a second from the sweep's time on
    from workflows.routines.reports import REPORT_PACE

    async with w.sm() as s:
        due = sorted((await s.execute(select(Outbox.not_before).where(
            Outbox.dedupe_key.like("weekly_report:%")))).scalars())
    sent_at = local(2026, 11, 27, 17, 0)
    assert due == [sent_at, sent_at + timedelta(seconds=1 / REPORT_PACE)]
    assert (await w.sweep("weekly_reports", local(2026, 11, 27, 17, 5))).acted == 0
    # a restart on Saturday does not send it again; next Friday sends the next week
    assert (await w.sweep("weekly_reports", local(2026, 11, 28, 10, 0))).acted == 0
    assert (await w.sweep("weekly_reports", local(2026, 12, 4, 17, 1))).counts["reports"] == 2


async def test_weekly_report_caught_up_after_downtime(w: World):
    r = await w.sweep("weekly_reports", local(2026, 11, 28, 9, 0))  # down over Friday evening
    assert r.counts["reports"] == 2
    assert (await w.sweep("weekly_reports", local(2026, 11, 28, 9, 5))).acted == 0


async def test_monthly_ranking_to_street(w: World):
    await _history(w)
    assert (await w.sweep("monthly_ranking", local(2026, 12, 1, 8, 59))).acted == 0
    r = await w.sweep("monthly_ranking", local(2026, 12, 1, 9, 0))
    assert r.counts["rankings"] == 1
    text = (await w.texts("g:XH"))[-1]
    assert "2026-11 网格考核排名" in text and "1. 翠苑一网格：得分 80.0" in text and "2. " not in text
    # the grids with nothing this month are named, not ranked above CY-01 with full marks
    assert "不参与排名：" in text and text.index("翠苑一网格") < text.index("翠苑二网格")
    assert (await w.sweep("monthly_ranking", local(2026, 12, 1, 9, 10))).acted == 0


async def test_stats_on_demand_in_groups(w: World):
    await _history(w)
    w.clock.set(local(2026, 11, 25, 12))
    await w.desk.send("CY01-L", "/stats", group="CY-01")
    last = await w.desk.last("g:CY-01")
    assert "翠苑一网格 本周统计" in last.text and "上报 2 件" in last.text and last.payload["media"]
    await w.desk.send("CY-C", "/stats", group="CY")
    last = await w.desk.last("g:CY")
    assert "翠苑社区 本周统计" in last.text and "网格排名" in last.text and len(last.payload["media"]) == 2
    # a grid with nothing this week gets the figures without a chart of zeros
    await w.desk.send("CY02-L", "/stats", group="CY-02")
    last = await w.desk.last("g:CY-02")
    assert "翠苑二网格 本周统计" in last.text and "上报 0 件" in last.text and not last.payload.get("media")


async def test_stats_of_a_quiet_week_draws_no_charts(w: World):
    """Nothing reported, registered or patrolled this week: the figures and the ranking, no chart."""
    w.clock.set(local(2026, 11, 25, 12))
    await w.desk.send("XH-C", "/stats", group="XH")
    last = await w.desk.last("g:XH")
    assert "西湖街道 本周统计" in last.text and "上报 0 件" in last.text and "网格排名" in last.text
    # nothing to assess: no grid is ranked (with 100 each), they are named as unranked
    assert "得分" not in last.text and "不参与排名：" in last.text and "翠苑一网格" in last.text
    assert not last.payload.get("media")


async def test_stats_in_a_district_group_ranks_its_streets(w: World):
    """Above a street /stats ranks the node's children (a district its streets), each with the sum
    of its grids; the week's total is the same as the street's when the other street is empty."""
    from workflows.models import Assignment, GroupBinding, Node

    await _history(w)
    async with w.sm() as s, s.begin():
        district = Node(code="SFQ", name="示范区", level="district")
        s.add(district)
        await s.flush()
        s.add(Node(code="GD", name="古荡街道", level="street", parent_id=district.id))
        (await s.get(Node, w.nodes["XH"])).parent_id = district.id  # 西湖街道 moves under the district
        s.add(GroupBinding(node_id=district.id, channel="test", chat_id="g:SFQ", status="active", title="示范区",
                           bound_at=w.clock.now()))
        s.add(Assignment(person_id=w.ids["XH-C"], node_id=district.id, role="centre_staff"))
    w.clock.set(local(2026, 11, 25, 12))
    await w.desk.send("XH-C", "/stats", group="XH")
    street = (await w.desk.last("g:XH")).text
    await w.desk.send("XH-C", "/stats", group="SFQ")
    last = await w.desk.last("g:SFQ")
    assert "示范区 本周统计" in last.text and "下级排名" in last.text and "网格排名" not in last.text
    # 西湖 has a yellow card; the empty street is not ranked above it with full marks (Stats.assessed)
    assert "1. 西湖街道：得分 80.0" in last.text and "2. " not in last.text
    assert "不参与排名：古荡街道" in last.text and "古荡街道：得分" not in last.text
    assert "翠苑一网格" not in last.text and len(last.payload["media"]) == 2
    assert "上报 2 件" in last.text and "上报 2 件" in street  # the district's week is its streets' sum


async def test_screening_reminders_and_dialogue(w: World):
    r = await w.sweep("screening", local(2026, 11, 23, 9, 0))
    assert r.counts == {"dispute_hazard": 1}  # Monday: weekly at community level
    assert (await w.sweep("screening", local(2026, 11, 23, 9, 5))).acted == 0
    r = await w.sweep("screening", local(2026, 12, 1, 9, 0))
    # the 1st: half-month street, monthly fire; and this week's (Monday 30th) was never sent: caught up
    assert r.counts == {"street_screening": 1, "fire_safety": 1, "dispute_hazard": 1}
    r = await w.sweep("screening", local(2026, 12, 16, 9, 0))
    assert r.counts == {"street_screening": 1}
    d = w.desk
    msgs = [m for m in await d.messages("g:CY") if "矛盾纠纷和安全隐患周排查" in m.text]
    first = msgs[0]
    await d.send("CY01-W2", kind="button", button=first.token("开始填报"), group="CY")  # not CY's staff
    assert await w.count(ScreeningRecord) == 0
    await d.send("CY-C", kind="button", button=first.token("开始填报"), group="CY")
    assert "第 1/5 项：邻里纠纷" in (await d.last("g:CY")).text
    await d.send("CY-C", "不知道", group="CY")
    assert "请回答「正常」或「有问题」" in (await d.messages("g:CY"))[-2].text
    await d.press("CY-C", "有问题", group="CY")
    await d.send("CY-C", "3号楼两户因漏水起纠纷", group="CY")
    for _ in range(4):
        await d.press("CY-C", "正常", group="CY")
    assert "4 项正常，1 项有情况" in (await d.last("g:CY")).text
    async with w.sm() as s:
        rec = (await s.execute(select(ScreeningRecord))).scalar_one()
    assert rec.kind == "dispute_hazard" and rec.period == "2026-W48" and rec.issues == 1
    await d.send("CY-C", kind="button", button=first.token("开始填报"), group="CY")
    assert await w.count(ScreeningRecord) == 1


async def test_notice_from_centre_staff(w: World):
    d = w.desk
    await d.send("XH-C", "/notice 本周六上午开展消防演练")
    reply = await d.last_text("XH-C")
    assert "写入 3 个工作群" in reply and "1 个下级节点没有绑定工作群" in reply and "CY-03" in reply
    for g in ("g:CY", "g:CY-01", "g:CY-02"):
        assert "【通知】西湖街道：本周六上午开展消防演练" in (await w.texts(g))[-1]
    assert await w.texts("g:XH") == []
    n = (await _one(w, Notice))
    assert (n.delivered, n.failed, n.missing) == (3, 1, ["CY-03"])
    # from the community's group: only below the community
    await d.send("CY-C", "/notice 社区通知", group="CY")
    assert "写入 2 个工作群" in (await d.last("g:CY")).text


async def test_notice_refused_to_others(w: World):
    d = w.desk
    await d.send("CY01-L", "/notice 大家注意")
    assert "没有使用 /notice 的权限" in await d.last_text("CY01-L")  # declared on the command (handlers.access)
    await d.send("CY-C", "/notice 越级通知", group="XH")
    assert "不是本群所属节点的中心人员" in (await d.last("g:XH")).text
    await d.send("XH-C", "/notice")
    assert "请在命令后写上通知内容" in await d.last_text("XH-C")
    assert await w.count(Notice) == 0


async def _one(w: World, model):
    async with w.sm() as s:
        return (await s.execute(select(model))).scalar_one()


def test_unranked_units_are_named_last_and_counted_past_the_shown():
    """A unit with nothing to assess has no score: ranked after every scored one (even one with
    cards), and named — up to RANKED_SHOWN, then how many in all — in the reader's language."""
    from types import SimpleNamespace

    from workflows.i18n import T
    from workflows.routines.reports import RANKED_SHOWN, unassessed_line
    from workflows.routines.stats import Stats, ranked

    idle = [(SimpleNamespace(name=f"网格{i}", code=f"G{i:02}"), Stats()) for i in range(RANKED_SHOWN + 5)]
    carded = (SimpleNamespace(name="持牌网格", code="Z1"), Stats(registered=1, red=3))
    on_time = (SimpleNamespace(name="按期网格", code="Z2"), Stats(registered=1, closed=1, closed_on_time=1,
                                                               registered_closed=1))
    order = ranked([*idle, carded, on_time])
    assert [n.code for n, _ in order[:2]] == ["Z2", "Z1"] and carded[1].score() == 40.0
    assert idle[0][1].score() is None and not idle[0][1].assessed
    line = unassessed_line(T("zh_CN"), order)
    assert "网格0、网格1" in line and f"网格{RANKED_SHOWN - 1}等 {RANKED_SHOWN + 5} 个" in line
    assert f"网格{RANKED_SHOWN}" not in line and "持牌网格" not in line
    assert "网格0, 网格1" in unassessed_line(T("en"), order) and unassessed_line(T("zh_CN"), [carded]) is None
