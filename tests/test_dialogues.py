"""The platform-neutral dialogues, driven through Office.handle like any channel does."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from handlers.office import Office
from workflows.cards import local
from workflows.models import Case, CaseEvent, Conversation, Outbox

from .support import Desk

pytestmark = pytest.mark.demo


@pytest.fixture
async def desk(sessionmaker, clock) -> Desk:
    d = Desk(sessionmaker, clock)
    await d.setup_chats()
    return d


async def report_until_confirm(desk: Desk, user: str = "r1", category: str = "市政设施") -> None:
    await desk.send(user, "/report", name="王小明")
    await desk.press(user, category)
    await desk.send(user, "小区门口路灯坏了三天")
    await desk.photo(user)
    await desk.press(user, "下一步")
    await desk.press(user, "选择网格")
    await desk.press(user, "翠苑社区")
    msgs = await desk.messages(f"p:{user}")
    grid_label = next(label for label in msgs[-1].labels() if label != "取消")
    await desk.press(user, grid_label)
    await desk.press(user, "跳过")


async def test_resident_report_dialogue(desk: Desk):
    await report_until_confirm(desk)
    confirm = await desk.last("p:r1")
    assert "小区门口路灯坏了三天" in confirm.text and "附件：1 个" in confirm.text
    await desk.press("r1", "提交")
    case = await desk.case()
    assert case.status == "reported" and len(case.attachments) == 1
    done = await desk.last_text("r1")
    assert case.number in done and "上报成功" in done
    assert case.number in (await desk.last(f"g:{(await _grid_code(desk, case))}")).text
    assert await desk.count(Conversation) == 0


@pytest.mark.parametrize("category", ["市政设施", "消防安全隐患"])
async def test_promised_time_is_the_deadline(desk: Desk, category: str):
    """What the resident is told at report is the deadline the case gets when it is registered."""
    await report_until_confirm(desk, category=category)
    await desk.press("r1", "提交")
    promised = re.search(r"一般在 (\S+ \S+) 前办结", await desk.last_text("r1")).group(1)
    case = await desk.case()
    await desk.press(_code(await _grid_code(desk, case), "L"), "立案", group=await _grid_code(desk, case))
    case = await desk.case()
    assert case.deadline_at is not None
    async with desk.sm() as session:
        assert local(desk.ctx(session), case.deadline_at, "%Y-%m-%d %H:%M") == promised


async def test_anonymous_report_hides_the_reporter(desk: Desk):
    await report_until_confirm(desk)
    await desk.send("r1", "13800001111")  # at the confirm step text is not an answer: nothing changes
    await desk.press("r1", "匿名提交")
    case = await desk.case()
    card = await desk.last(f"g:{await _grid_code(desk, case)}")
    assert case.anonymous and "上报人：匿名" in card.text and "王" not in card.text.split("上报人")[1][:5]


async def test_restart_mid_dialogue_resumes(desk: Desk, sessionmaker, clock):
    await desk.send("r1", "/report")
    await desk.press("r1", "环境卫生")
    # a new office (a restarted process) on the same database carries on where it stopped
    desk.office = Office(sessionmaker, clock=clock, channels=frozenset({"test"}))
    await desk.send("r1", "楼下垃圾没人清")
    assert "照片" in await desk.last_text("r1")
    async with sessionmaker() as s:
        conv = (await s.execute(select(Conversation))).scalar_one()
    assert conv.step == "media" and conv.data["description"] == "楼下垃圾没人清"


async def test_cancel_at_any_step(desk: Desk):
    await desk.send("r1", "/report")
    await desk.press("r1", "环境卫生")
    await desk.send("r1", "/cancel")
    assert "已取消" in await desk.last_text("r1")
    assert await desk.count(Conversation) == 0 and await desk.count(Case) == 0
    await report_until_confirm(desk)
    await desk.press("r1", "取消")
    assert await desk.count(Case) == 0


async def test_bad_input_in_the_report(desk: Desk):
    await desk.send("r1", "/report")
    await desk.send("r1", "火星问题")
    assert "没有找到「火星问题」" in (await desk.messages("p:r1"))[-2].text
    await desk.press("r1", "环境卫生")
    await desk.photo("r1")  # a photo where the description is expected: kept, and asked for text
    assert "文字描述" in await desk.last_text("r1")
    await desk.send("r1", "字" * 20_000)
    assert "太长" in await desk.last_text("r1")
    await desk.send("r1", kind="unsupported")
    assert "暂不支持" in await desk.last_text("r1")
    await desk.photo("r1", size=100 * 1024 * 1024)
    assert "照片太大" in await desk.last_text("r1") and "上限是 10 MB" in await desk.last_text("r1")
    async with desk.sm() as s:
        conv = (await s.execute(select(Conversation))).scalar_one()
    assert conv.step == "description" and len(conv.data["media"]) == 1
    assert await desk.count(Case) == 0


async def test_location_outside_every_grid(desk: Desk):
    await desk.send("r1", "/report")
    await desk.press("r1", "环境卫生")
    await desk.send("r1", "垃圾")
    await desk.press("r1", "下一步")
    await desk.send("r1", location=(39.9, 116.4))  # Beijing
    assert "不在本辖区任何网格内" in (await desk.messages("p:r1"))[-2].text
    await desk.send("r1", location=(30.285, 120.115))  # inside the demo street
    assert "所在网格" in await desk.last_text("r1")


async def test_leader_worker_and_rating_dialogues(desk: Desk):
    await report_until_confirm(desk)
    await desk.press("r1", "提交")
    case = await desk.case()
    grid = await _grid_code(desk, case)
    leader, worker = _code(grid, "L"), _code(grid, "W1")

    # someone who is not the grid's leader presses the leader's button: an alert, nothing changes
    reply = await desk.press(worker, "派遣", group=grid)
    assert reply.alert and "网格长" in reply.alert
    assert (await desk.case()).status == "reported"

    await desk.press(leader, "派遣", group=grid)
    worker_name = (await desk.person(worker)).name
    await desk.press(leader, worker_name, group=grid)
    assert (await desk.case()).status == "dispatched"
    await desk.press(worker, "接收")
    await desk.press(worker, "办结")
    await desk.send(worker, "已修好路灯")
    await desk.photo(worker, "after")
    await desk.press(worker, "提交结果")
    assert (await desk.case()).status == "resolved"

    await desk.press(leader, "返工", group=grid)
    await desk.send(leader, "灯罩没装好", group=grid)
    assert (await desk.case()).status == "in_progress"
    await desk.press(worker, "办结")
    await desk.send(worker, "灯罩已装好")
    await desk.press(worker, "提交结果")
    await desk.press(leader, "核查通过", group=grid)
    assert (await desk.case()).status == "closed"

    await desk.press("r1", "满意")
    await desk.send("r1", "谢谢网格员")
    case = await desk.case()
    assert case.rating == "satisfied" and case.rating_comment == "谢谢网格员"


async def test_stale_and_forged_buttons(desk: Desk):
    await report_until_confirm(desk)
    await desk.press("r1", "提交")
    case = await desk.case()
    grid = await _grid_code(desk, case)
    leader = _code(grid, "L")
    first_card = (await desk.messages(f"g:{grid}"))[-1]
    await desk.press(leader, "立案", group=grid)
    events = await desk.count(CaseEvent)
    # the old card's register button after the case moved on
    reply = await desk.send(leader, kind="button", button=first_card.token("不予立案"), group=grid)
    assert "新进展" in reply.alert
    reply = await desk.send(leader, kind="button", button="forged-token-123", group=grid)
    assert "失效" in reply.alert
    reply = await desk.send(leader, kind="button", button="x" * 500, group=grid)
    assert "失效" in reply.alert
    assert await desk.count(CaseEvent) == events


async def test_duplicate_event_has_one_effect(desk: Desk):
    await desk.send("r1", "/report", event_id="same")
    before = await desk.count(Outbox)
    reply = await desk.send("r1", "/report", event_id="same")
    assert reply.duplicate and await desk.count(Outbox) == before


async def test_my_cases_and_status(desk: Desk):
    await report_until_confirm(desk)
    await desk.press("r1", "提交")
    case = await desk.case()
    await desk.send("r1", "/my")
    assert case.number in await desk.last_text("r1")
    await desk.send("r1", f"请问 {case.number} 怎么样了")
    text = await desk.last_text("r1")
    assert "待立案" in text and "上报" in text
    # another resident may not read it, and cannot tell it from a number that does not exist (14.8)
    await desk.send("r2", f"/case {case.number}")
    other = await desk.last_text("r2")
    await desk.send("r2", "/case XH-20990101-001")
    unknown = await desk.last_text("r2")
    assert "找不到" in other and other.replace(case.number, "N") == unknown.replace("XH-20990101-001", "N")
    # a bare number is enough, and the reporter's own card offers what they may do now
    await desk.send("r1", case.number)
    assert "待立案" in await desk.last_text("r1")
    await desk.press("r1", "撤销上报")
    assert "已撤销" in await desk.last_text("r1")


async def test_unbound_group_gets_a_hint_once(desk: Desk):
    await desk.send("CY01-L", "大家好", group="NEW-GROUP")
    await desk.send("CY01-L", "还有人吗", group="NEW-GROUP")
    msgs = await desk.messages("g:NEW-GROUP")
    assert len(msgs) == 1 and "/bind" in msgs[0].text


async def test_bind_a_group(desk: Desk, sessionmaker, clock):
    from workflows.accounts import bind_token

    async with sessionmaker() as s, s.begin():
        token = await bind_token(desk.ctx(s), "CY-02")
    await desk.send("r9", f"/bind {token}", group="NEWCHAT")
    assert "只有" in (await desk.last("g:NEWCHAT")).text  # a resident cannot bind
    await desk.send("CY02-L", f"/bind {token}", group="NEWCHAT")
    assert "已绑定" in (await desk.last("g:NEWCHAT")).text
    await desk.send("CY02-L", f"/bind {token}", group="NEWCHAT2")
    assert "用过" in (await desk.last("g:NEWCHAT2")).text
    clock.advance(hours=25)
    async with sessionmaker() as s, s.begin():
        old = await bind_token(desk.ctx(s), "CY-03")
    clock.advance(hours=25)
    await desk.send("CY03-L", f"/bind {old}", group="NEWCHAT3")
    assert "过期" in (await desk.last("g:NEWCHAT3")).text


async def test_unknown_command_and_help(desk: Desk):
    await desk.send("r1", "/frobnicate")
    assert "没有这个命令" in await desk.last_text("r1")
    await desk.send("r1", "/help")
    text = await desk.last_text("r1")
    assert "/report" in text and "/tasks" not in text  # residents see no staff commands
    await desk.send("CY01-W1", "/help")
    assert "/tasks" in await desk.last_text("CY01-W1")


async def test_english(desk: Desk):
    await desk.send("r1", "/language")
    await desk.press("r1", "English")
    await desk.send("r1", "/report")
    assert "category" in (await desk.last_text("r1")).lower()


def _code(grid: str, suffix: str) -> str:
    return grid.replace("-", "") + "-" + suffix


async def _grid_code(desk: Desk, case: Case) -> str:
    from workflows.models import Node

    async with desk.sm() as s:
        return (await s.get(Node, case.grid_id)).code


async def test_case_number_in_group_shows_the_buttons_this_viewer_may_press(desk: Desk):
    """Issue 9.1: the card's actions are reachable without the original message."""
    from sqlalchemy import select

    from workflows.models import Assignment, Node, Person

    await report_until_confirm(desk)
    await desk.press("r1", "提交")
    case = await desk.case()
    async with desk.sm() as s:
        grid = (await s.get(Node, case.grid_id)).code
        leader = (await s.execute(select(Person.code).join(Assignment, Assignment.person_id == Person.id).where(
            Assignment.node_id == case.grid_id, Assignment.role == "leader").limit(1))).scalar_one()
    await desk.send(leader, case.number, group=grid)
    card = await desk.last(f"g:{grid}")
    assert case.number in card.text and "立案" in card.labels()
    await desk.press(leader, "立案", group=grid)
    assert (await desk.case()).status == "registered"
    # the reporter sees no leader buttons on the same case
    await desk.send("r1", f"/case {case.number}")
    assert "立案" not in (await desk.last("p:r1")).labels()
