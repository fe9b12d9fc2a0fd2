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

from .test_case_loop import W1, L, World

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
    assert [r[0] for r in rows] == [g.code for g, _ in per] + ["XH"]
    for r, (_, st) in zip(rows, per + [(None, total)], strict=True):
        assert r[2:5] == [st.reported, st.registered, st.closed]
        assert r[5:9] == [st.on_time_rate, st.close_rate, st.rework_rate, st.satisfaction]
        assert r[13] == round(st.score(), 1)
    xh = dict(zip(headers, rows[-1], strict=True))
    assert xh["网格"] == "西湖街道合计" and xh["上报"] >= 1 and xh["满意率"] == 1


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
