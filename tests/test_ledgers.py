"""The ledgers (台账) as Excel: every cell checked against the cases, patrols, diary and leave it
came from, and the 考核表 against /stats' own figures."""

from __future__ import annotations

import io
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from openpyxl import load_workbook

from workflows import cases, tree
from workflows.context import Ctx
from workflows.i18n import T
from workflows.ledger_xlsx import write_xlsx
from workflows.ledgers import ledger, window
from workflows.media_store import DirectoryStore, use_store
from workflows.routines import leave, patrols
from workflows.routines.stats import node_stats

from .test_case_loop import W1, W2, L, World

pytestmark = pytest.mark.demo
SH = ZoneInfo("Asia/Shanghai")


@pytest.fixture
async def w(sessionmaker, clock) -> World:
    return await World(sessionmaker, clock).setup()


@pytest.fixture
def store(tmp_path):
    store = DirectoryStore(tmp_path / "media")
    use_store(store)
    yield store
    use_store(None)


async def _book(w: World, kind: str, node: str, first: date, last: date, language: str = "zh_CN"):
    buf = io.BytesIO()
    async with w.sm() as s:
        ctx = Ctx(session=s, clock=w.clock)
        t = T(language)
        n = await write_xlsx(t, await ledger(ctx, t, kind, await tree.node_by_code(ctx, node), first, last), buf)
    buf.seek(0)
    ws = load_workbook(buf).active
    rows = [list(r) for r in ws.iter_rows(values_only=True)]
    assert len(rows) == n + 2
    return ws, rows[0][0], rows[1], rows[2:]


def _local(at: datetime) -> datetime:
    return at.astimezone(SH).replace(tzinfo=None, microsecond=0)


async def test_case_ledger_cell_by_cell(w: World):
    day = w.clock.now().astimezone(SH).date()
    done = await w.report(text="=HYPERLINK(\"http://x\")路灯不亮了\x07")
    await w.do(cases.register, w.ids[L], done.id)
    await w.do(cases.dispatch, w.ids[L], done.id, assignee_id=w.ids[W1])
    await w.do(cases.accept, w.ids[W1], done.id)
    w.clock.advance(hours=2)
    await w.do(cases.finish, w.ids[W1], done.id, "换了灯泡")
    await w.do(cases.verify, w.ids[L], done.id, passed=False, reason="还是不亮")
    w.clock.advance(hours=1)
    await w.do(cases.finish, w.ids[W1], done.id, "换了整灯")
    await w.do(cases.verify, w.ids[L], done.id, passed=True)
    await w.do(cases.rate, w.resident.id, done.id, "basic", "慢了点")
    late = await w.report(text="井盖缺失")
    await w.do(cases.register, w.ids[L], late.id)
    w.clock.advance(days=4)  # past the 72-hour limit, still open
    done, late = await w.fresh(done), await w.fresh(late)

    ws, title, headers, rows = await _book(w, "cases", "XH", day, day + timedelta(days=4))
    assert title == f"事件台账（西湖街道，{day} 至 {day + timedelta(days=4)}）"
    assert ws.freeze_panes == "A3"
    assert headers[:4] == ["事件编号", "上报时间", "来源", "网格"]
    assert [r[0] for r in rows] == [done.number, late.number]
    row = dict(zip(headers, rows[0], strict=True))
    assert row["上报时间"] == _local(done.created_at)  # a real date, not text
    # a description that looks like a formula stays text, and the bell character is dropped
    assert row["事件描述"] == "=HYPERLINK(\"http://x\")路灯不亮了"
    assert ws.cell(row=3, column=headers.index("事件描述") + 1).data_type == "s"
    assert row["来源"] == "群众上报" and row["类别"] == "市政设施" and row["紧急程度"] == "一般"
    assert row["上报人"] == "李**" and row["联系电话"] == "139****5678"
    assert row["当前状态"] == "已结案"
    assert row["立案时间"] == _local(done.registered_at) and row["立案人"] == "张伟"
    assert row["派遣人"] == "张伟" and row["处置人/队伍"] == "孙丽"
    # after a rework the ledger shows the last finish, the one that was verified
    assert row["办结时间"] == _local(done.resolved_at) and row["办结人"] == "孙丽"
    assert row["结案时间"] == _local(done.closed_at) and row["核查人"] == "张伟"
    assert row["处置时限"] == _local(done.deadline_at) and row["是否按期"] == "是"
    assert row["返工次数"] == 1 and row["重新办理次数"] == 0
    assert row["评价"] == "基本满意" and row["评价意见"] == "慢了点"
    other = dict(zip(headers, rows[1], strict=True))
    assert other["当前状态"] == "已立案，待派遣" and other["是否按期"] == "已超期"
    assert other["派遣时间"] is None and other["评价"] is None

    # a grid outside the period or the node shows nothing; English headers on request
    _, _, _, none = await _book(w, "cases", "XH", day + timedelta(days=1), day + timedelta(days=2))
    assert none == []
    _, title_en, headers_en, rows_en = await _book(w, "cases", "CY-01", day, day, language="en")
    assert headers_en[0] == "Case number" and len(rows_en) == 2 and rows_en[0][10] == "Closed"


async def test_assessment_is_the_stats_figures(w: World):
    day = w.clock.now().astimezone(SH).date()
    case = await w.report()
    await w.do(cases.register, w.ids[L], case.id)
    await w.do(cases.dispatch, w.ids[L], case.id, assignee_id=w.ids[W1])
    await w.do(cases.finish, w.ids[W1], case.id, "好了")
    await w.do(cases.verify, w.ids[L], case.id, passed=True)
    await w.do(cases.rate, w.resident.id, case.id, "satisfied", "好")
    _, _, headers, rows = await _book(w, "assessment", "XH", day, day)
    async with w.sm() as s:
        ctx = Ctx(session=s, clock=w.clock)
        total, per = await node_stats(ctx, await tree.node_by_code(ctx, "XH"), *window(ctx, day, day))
    areas = [r for r in rows if r[0] in ("网格", "合计")]
    assert [r[1] for r in areas] == [g.code for g, _ in per] + ["XH"]
    assert [r[0] for r in areas] == ["网格"] * len(per) + ["合计"]
    for r, (_, st) in zip(areas, per + [(None, total)], strict=True):
        assert r[3:6] == [st.reported, st.registered, st.closed]
        assert r[6:10] == [st.on_time_rate, st.close_rate, st.rework_rate, st.satisfaction]
        assert r[18] == (None if st.score() is None else round(st.score(), 1))
    xh = dict(zip(headers, areas[-1], strict=True))
    assert xh["名称"] == "西湖街道合计" and xh["上报"] >= 1 and xh["满意率"] == 1


async def test_patrol_diary_and_leave_ledgers(w: World):
    day = w.clock.now().astimezone(SH).date()
    await w.do(patrols.record_checkin, w.ids[W1], w.nodes["CY-01"],
               answers=[{"item": "道路破损", "ok": False, "note": "坑"}, {"item": "乱堆放", "ok": True}])
    await w.do(patrols.write_diary, w.ids[W1], "走访了3号楼")
    lv = await w.do(leave.request, w.ids[W1], (day + timedelta(days=1)).strftime("%m-%d"),
                    (day + timedelta(days=2)).strftime("%m-%d"), "家中有事")
    await w.do(leave.approve, w.ids[L], lv.id)

    _, _, headers, rows = await _book(w, "patrols", "CY", day, day)
    row = dict(zip(headers, rows[0], strict=True))
    assert len(rows) == 1 and row["日期"] == datetime.combine(day, datetime.min.time())
    assert row["网格"] == "翠苑第一网格" and row["责任人"] == "孙丽" and row["巡查人"] == "孙丽"
    assert row["检查项"] == 2 and row["发现问题"] == 1 and row["问题说明"] == "道路破损：坑"
    assert row["上报事件"].startswith("XH-")

    _, _, headers, rows = await _book(w, "diary", "XH", day, day)
    assert [r[1:] for r in rows] == [["翠苑第一网格", "孙丽", "走访了3号楼"]]

    # a leave belongs to every period it overlaps
    _, _, headers, rows = await _book(w, "leave", "XH", day + timedelta(days=2), day + timedelta(days=9))
    row = dict(zip(headers, rows[0], strict=True))
    assert row["申请人"] == "孙丽" and row["天数"] == 2 and row["状态"] == "已批准" and row["审批人"] == "张伟"
    _, _, _, none = await _book(w, "leave", "XH", day + timedelta(days=3), day + timedelta(days=9))
    assert none == []


async def test_bad_requests_say_what_is_wrong(w: World):
    async with w.sm() as s:
        ctx = Ctx(session=s, clock=w.clock)
        node = await tree.node_by_code(ctx, "XH")
        with pytest.raises(ValueError, match="未知的台账类型"):
            await ledger(ctx, T(), "money", node, date(2026, 11, 1), date(2026, 11, 30))
        with pytest.raises(ValueError, match="早于开始日期"):
            await ledger(ctx, T(), "cases", node, date(2026, 11, 30), date(2026, 11, 1))


async def test_ledger_in_chat(w: World, store):
    """A leader asks for the case ledger in the group and receives the workbook; a worker and
    a resident are refused; a worker pressing the leader's buttons gets no file."""
    case = await w.report()
    await w.do(cases.register, w.ids[L], case.id)
    desk = w.desk
    await desk.send(L, "/ledger", group="CY-01")
    assert (await desk.last("g:CY-01")).labels() == ["事件台账", "巡查台账", "民情日记", "请销假台账", "考核表"]
    await desk.press(L, "事件台账", group="CY-01")
    assert (await desk.last("g:CY-01")).labels() == ["本月", "上月", "本周", "上周", "今年"]
    await desk.press(W1, "本周", group="CY-01")  # not the worker's to press
    assert "只有本级及上级的网格长" in (await desk.last("g:CY-01")).text
    await desk.press(L, "本周", group="CY-01")
    sent = await desk.last("g:CY-01")
    assert sent.text.startswith("事件台账（翠苑第一网格，") and sent.text.endswith("共 1 行。")
    (media,) = sent.payload["media"]
    assert media["kind"] == "file" and media["name"].endswith(".xlsx")
    rows = list(load_workbook(io.BytesIO(await store.get(media["sha256"]))).active.iter_rows(values_only=True))
    assert rows[2][0] == case.number and len(rows) == 3

    # in a private chat, a street's centre staff exports for the street
    await desk.send("XH-ZX1", "/ledger")
    assert "西湖街道" in (await desk.last_text("XH-ZX1"))
    await desk.send(W1, "/ledger")  # a worker is not offered the command at all
    assert "您没有使用 /ledger 的权限" in await desk.last_text(W1)


def _expected(case_rows, who, start, end) -> dict:
    """The 考核表 figures of the cases `who` picks, counted here from the case rows themselves."""
    mine = [c for c in case_rows if who(c)]

    def within(at):
        return at is not None and start <= at < end

    closed = [c for c in mine if c.status == "closed" and within(c.closed_at)]
    registered = [c for c in mine if within(c.registered_at)]
    rated = [c for c in closed if c.rating is not None]
    return {"上报": sum(within(c.created_at) for c in mine), "立案": len(registered), "结案": len(closed),
            "按期处置率": (sum(c.closed_at <= c.deadline_at for c in closed) / len(closed)) if closed else None,
            "结案率": (sum(c.status == "closed" for c in registered) / len(registered)) if registered else None,
            "返工率": (sum(c.rework_count > 0 for c in closed) / len(closed)) if closed else None,
            "满意率": (sum(c.rating in ("satisfied", "basic") for c in rated) / len(rated)) if rated else None}


async def test_assessment_per_worker_team_and_department(w: World):
    from sqlalchemy import select

    from workflows import care
    from workflows.care_models import CarePerson, PointEntry
    from workflows.models import Case, TeamMember

    day = w.clock.now().astimezone(SH).date()
    done = await w.report()  # W1's: closed on time and rated
    await w.do(cases.dispatch, w.ids[L], done.id, assignee_id=w.ids[W1])
    await w.do(cases.finish, w.ids[W1], done.id, "好了")
    await w.do(cases.verify, w.ids[L], done.id, passed=True)
    await w.do(cases.rate, w.resident.id, done.id, "satisfied", "好")
    redo = await w.report(text="垃圾没清")  # W2's: closed after a rework
    await w.do(cases.dispatch, w.ids[L], redo.id, assignee_id=w.ids[W2])
    await w.do(cases.finish, w.ids[W2], redo.id, "清了")
    await w.do(cases.verify, w.ids[L], redo.id, passed=False, reason="没清干净")
    await w.do(cases.finish, w.ids[W2], redo.id, "清干净了")
    await w.do(cases.verify, w.ids[L], redo.id, passed=True)
    team = await w.report(text="水管漏水")  # the repair team's, accepted by one of its members
    await w.do(cases.dispatch, w.ids[L], team.id, team_id=w.teams["T-WY"])
    async with w.sm() as s:
        member = (await s.execute(select(TeamMember.person_id).where(TeamMember.team_id == w.teams["T-WY"])
                                  .order_by(TeamMember.person_id))).scalars().first()
        people = {p.code: p.id for p in (await s.execute(select(CarePerson))).scalars()}
    await w.do(cases.accept, member, team.id)
    await w.report(text="没人管的")  # reported only: in the grid's figures, nobody's row
    # visits: W1 visits one of their two people on the due day; the rest pass their day unvisited
    await w.do(care.record_visit, w.ids[W1], people["CY01-H01-1"], "fine")
    async with w.sm() as s, s.begin():
        for pid, d, n in ((w.ids[W1], day, 7), (w.ids[W1], day + timedelta(days=1), -3),
                          (w.ids[W1], day - timedelta(days=10), 50), (w.ids[W2], day, 2)):
            s.add(PointEntry(person_id=pid, at=w.clock.now(), day=d, month=d.strftime("%Y-%m"), points=n,
                             rule_code="award", reason="测试"))
    w.clock.advance(days=1)

    _, _, headers, rows = await _book(w, "assessment", "XH", day, day + timedelta(days=1))
    by = {(r[0], r[1]): dict(zip(headers, r, strict=True)) for r in rows}
    start, end = datetime.combine(day, datetime.min.time(), SH), datetime.combine(day + timedelta(days=2),
                                                                                   datetime.min.time(), SH)
    async with w.sm() as s:
        case_rows = list((await s.execute(select(Case))).scalars())
    figures = list(_expected(case_rows, lambda c: True, start, end))
    for (kind, code), who in {("人员", W1): lambda c: c.assignee_id == w.ids[W1],
                              ("人员", W2): lambda c: c.assignee_id == w.ids[W2],
                              ("队伍", "T-WY"): lambda c: c.team_id == w.teams["T-WY"],
                              ("队伍", "T-CG"): lambda c: c.team_id == w.teams["T-CG"],
                              ("部门", "ZJJ"): lambda c: c.team_id == w.teams["T-WY"],
                              ("网格", "CY-01"): lambda c: c.grid_id == w.nodes["CY-01"]}.items():
        row = by[(kind, code)]
        assert {f: row[f] for f in figures} == _expected(case_rows, who, start, end), (kind, code)
    assert by[("人员", W1)]["上报"] == 1 and by[("人员", W1)]["满意率"] == 1
    assert by[("人员", W2)]["返工率"] == 1 and by[("队伍", "T-WY")]["结案"] == 0
    assert by[("部门", "ZJJ")]["上报"] == 1 and by[("部门", "CGJ")]["上报"] == 0
    member_code = next(c for c, i in w.ids.items() if i == member)
    assert by[("人员", member_code)]["立案"] == 1  # the member who accepted it
    # visit coverage: W1 one of two on time, W2 none of one; the grid both, the street everything
    assert (by[("人员", W1)]["应走访"], by[("人员", W1)]["按期走访"], by[("人员", W1)]["走访按期率"]) == (2, 1, 0.5)
    assert (by[("人员", W2)]["应走访"], by[("人员", W2)]["按期走访"]) == (1, 0)
    assert (by[("网格", "CY-01")]["应走访"], by[("网格", "CY-01")]["按期走访"]) == (3, 1)
    assert (by[("网格", "CY-02")]["应走访"], by[("合计", "XH")]["应走访"]) == (1, 4)
    # points: the period's ledger rows only; grids and teams have none
    assert by[("人员", W1)]["积分"] == 4 and by[("人员", W2)]["积分"] == 2
    assert by[("网格", "CY-01")]["积分"] is None
    # worker rows are listed for the street's staff even with nothing to count
    assert by[("人员", "CY02-W1")]["上报"] == 0 and by[("人员", "CY02-W1")]["应走访"] == 1
    kinds = [r[0] for r in rows]
    assert kinds == sorted(kinds, key=["网格", "合计", "人员", "队伍", "部门"].index)
