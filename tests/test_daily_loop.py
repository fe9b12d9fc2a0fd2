"""Issue 9 on the in-process desk: inboxes by role, supervision after a second 不满意, team cases,
the worker's task card and the words that follow the level. (tests/contract/test_daily_loop.py
walks the same points on the terminal and Telegram.)"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from workflows import cases
from workflows.errors import NotAllowed, WrongState
from workflows.i18n import T
from workflows.models import Case, Person

from .support import Desk
from .test_dialogues import report_until_confirm

pytestmark = pytest.mark.demo


@pytest.fixture
async def desk(sessionmaker, clock) -> Desk:
    d = Desk(sessionmaker, clock)
    await d.setup_chats()
    return d


async def reported(desk: Desk, category: str = "市政设施") -> Case:
    await report_until_confirm(desk, category=category)
    await desk.press("r1", "提交")
    return await desk.case()


async def grid_of(desk: Desk, case: Case) -> str:
    from workflows.models import Node

    async with desk.sm() as s:
        return (await s.get(Node, case.grid_id)).code


def staff(grid: str, suffix: str) -> str:
    return grid.replace("-", "") + "-" + suffix


async def do(desk: Desk, fn, *args, **kw):
    async with desk.sm() as s, s.begin():
        return await fn(desk.ctx(s), *args, **kw)


async def pid(desk: Desk, code: str) -> int:
    return (await desk.person(code)).id


async def test_inbox_of_a_stand_in_and_of_the_street_centre(desk: Desk):
    case = await reported(desk)
    grid = await grid_of(desk, case)
    leader, worker = staff(grid, "L"), staff(grid, "W1")
    # the leader names a worker as stand-in: the worker's /tasks now shows the case to register
    await desk.send(worker, "/tasks")
    assert await desk.last_text(worker) == "您目前没有待办事件。"
    await desk.send(leader, f"/standin {worker}", group=grid)
    await desk.send(worker, "/tasks")
    assert case.number in await desk.last_text(worker) and "待立案" in await desk.last_text(worker)

    # escalated twice, it waits at the street: its centre staff see it, the grid leader no longer does
    await do(desk, cases.escalate, await pid(desk, leader), case.id, "需要多部门协调")
    case = await desk.case()
    await do(desk, cases.escalate, await pid(desk, "CY-L"), case.id, "超出社区处置能力")
    await desk.send("XH-ZX1", "/tasks")
    inbox = await desk.last("p:XH-ZX1")
    assert case.number in inbox.text and "待派遣" in inbox.text
    await desk.press("XH-ZX1", case.number)
    card = await desk.last("p:XH-ZX1")
    assert "派遣" in card.labels() and "上报上级" in card.labels()
    await desk.send(leader, "/tasks")
    assert case.number not in await desk.last_text(leader)
    # the district centre may act on it too, but it is not waiting for them
    await desk.send("SFQ-ZX1", "/tasks")
    assert case.number not in await desk.last_text("SFQ-ZX1")


async def test_a_team_members_inbox_and_a_late_accept(desk: Desk):
    case = await reported(desk)
    grid = await grid_of(desk, case)
    leader = staff(grid, "L")
    async with desk.sm() as s:
        from workflows.models import Team

        team = (await s.execute(select(Team).where(Team.code == "T-WY"))).scalar_one()
    await do(desk, cases.dispatch, await pid(desk, leader), case.id, team_id=team.id)
    for code in ("WY-01", "WY-02"):
        await desk.send(code, "/tasks")
        assert case.number in await desk.last_text(code) and "待办理" in await desk.last_text(code)
    first_card = next(m for m in await desk.messages("p:WY-02") if "接收" in m.labels())

    await desk.press("WY-01", "接收")
    # WY-02 presses 接收 on the card they were sent before: told who took it, nothing changes
    reply = await desk.send("WY-02", kind="button", button=first_card.token("接收"))
    assert reply.alert and "曹勇" in reply.alert and "处置中" not in reply.alert
    case = await desk.case()
    assert case.assignee_id == await pid(desk, "WY-01") and case.status == "in_progress"
    await desk.send("WY-02", "/tasks")
    assert await desk.last_text("WY-02") == "您目前没有待办事件。"
    # and cannot finish it behind the taker's back, yet can still look it up
    with pytest.raises(WrongState) as refused:
        await do(desk, cases.finish, await pid(desk, "WY-02"), case.id, "好了")
    assert "曹勇" in refused.value.render(T("zh_CN"))
    # an old 办结 button on the card they were first sent says the same
    reply = await desk.send("WY-02", kind="button", button=first_card.token("办结"))
    assert reply.alert and "曹勇" in reply.alert
    await desk.send("WY-02", f"/case {case.number}")
    assert case.number in await desk.last_text("WY-02")


async def test_a_closed_unrated_case_still_offers_the_rating_and_english_reads_english(desk: Desk):
    case = await reported(desk)
    grid = await grid_of(desk, case)
    leader, worker = staff(grid, "L"), staff(grid, "W1")
    await do(desk, cases.dispatch, await pid(desk, leader), case.id, assignee_id=await pid(desk, worker))
    await do(desk, cases.finish, await pid(desk, worker), case.id, "修好了")
    await do(desk, cases.verify, await pid(desk, leader), case.id, passed=True)
    await desk.send("r1", f"/case {case.number}")
    assert "不满意" in (await desk.last("p:r1")).labels()
    assert "您" in await desk.last_text("r1")  # the resident's own timeline: 您 上报
    # 不满意, then the resident cancels the reason: nothing happened, the rating is still offered
    await desk.press("r1", "不满意")
    await desk.press("r1", "取消")
    assert (await desk.case()).status == "closed"
    await desk.send("r1", f"/case {case.number}")
    assert "不满意" in (await desk.last("p:r1")).labels()

    async with desk.sm() as s, s.begin():
        me = (await s.execute(select(Person).where(Person.code == worker))).scalar_one()
        me.language = "en"
    await desk.press("r1", "不满意")
    await desk.send("r1", "还是不亮")
    text = await desk.last_text(worker)
    assert "还是不亮" in text and "unsatisfied" in text and "重新" not in text


async def test_words_follow_the_level(desk: Desk):
    case = await reported(desk)
    grid = await grid_of(desk, case)
    leader = staff(grid, "L")
    await do(desk, cases.escalate, await pid(desk, leader), case.id, "超出网格处置能力")
    case = await desk.case()
    await desk.send("CY-L", f"/case {case.number}")
    # a grid worker presses the community's button: the refusal names the community's role
    reply = await desk.press(staff(grid, "W1"), "派遣", chat="p:CY-L")
    assert reply.alert and "社区工作人员" in reply.alert and "网格长" not in reply.alert
    await desk.press("CY-L", "派遣")
    await desk.press("CY-L", "物业维修队（默认）")
    await desk.press("WY-01", "接收")
    await desk.press("WY-01", "办结")
    await desk.send("WY-01", "已修复")
    await desk.press("WY-01", "提交结果")
    assert "翠苑社区的社区工作人员" in await desk.last_text("WY-01")


async def test_a_declined_private_matter_gets_the_guidance(desk: Desk):
    case = await reported(desk, category="民生服务")
    grid = await grid_of(desk, case)
    leader = staff(grid, "L")
    await desk.press(leader, "不予立案", group=grid)
    await desk.press(leader, "属于自家事，已告知办理途径", group=grid)
    assert (await desk.case()).status == "reported"
    # a typed reason instead of the preset is taken as written, at once
    await desk.send(leader, "家里水管漏水，需自行联系维修", group=grid)
    assert (await desk.case()).status == "declined"
    told = await desk.last_text("r1")
    assert "家里水管漏水" in told and "自家事" in told and "便民服务中心" in told


async def test_an_english_resident_is_told_where_to_go_in_english(desk: Desk):
    case = await reported(desk)
    async with desk.sm() as s, s.begin():
        (await s.get(Person, case.reporter_id)).language = "en"
    grid = await grid_of(desk, case)
    await desk.press(staff(grid, "L"), "不予立案", group=grid)
    await desk.send(staff(grid, "L"), "燃气泄漏，请联系燃气公司", group=grid)
    told = await desk.last_text("r1")
    assert "燃气泄漏" in told and "emergency repair line" in told and "抢修电话" not in told, told


async def test_a_stale_preset_confirmation_does_nothing(desk: Desk):
    case = await reported(desk)
    grid = await grid_of(desk, case)
    leader = staff(grid, "L")
    await desk.press(leader, "不予立案", group=grid)
    await desk.press(leader, "重复上报", group=grid)
    # someone else presses the leader's 确认: it is not their dialogue
    reply = await desk.press(staff(grid, "W1"), "确认", group=grid)
    assert reply.alert and (await desk.case()).status == "reported"
    await desk.send(leader, "/cancel", group=grid)
    reply = await desk.press(leader, "确认", group=grid)
    assert reply.alert and (await desk.case()).status == "reported"


async def test_the_ab_partner_sees_and_handles_the_tasks_of_a_worker_on_leave(desk: Desk):
    from workflows.routines import leave

    case = await reported(desk)
    grid = await grid_of(desk, case)
    leader, worker = staff(grid, "L"), staff(grid, "W1")
    partner = "CY02-W2"  # 胡军, 孙丽's A/B partner in the demo
    await do(desk, cases.dispatch, await pid(desk, leader), case.id, assignee_id=await pid(desk, worker))
    await desk.send(partner, "/tasks")
    assert case.number not in await desk.last_text(partner)

    request = await do(desk, leave.request, await pid(desk, worker), "11-23", "11-25", "家中有事")
    await do(desk, leave.approve, await pid(desk, leader), request.id)
    await desk.send(partner, "/tasks")
    inbox = await desk.last("p:" + partner)
    assert case.number in inbox.text and "A/B岗代办" in inbox.text
    await desk.press(partner, case.number)
    await desk.press(partner, "接收")
    case = await desk.case()
    assert case.status == "in_progress" and case.assignee_id == await pid(desk, partner)
    # another worker of the grid still may not
    with pytest.raises(NotAllowed):
        await do(desk, cases.finish, await pid(desk, staff(grid, "W2")), case.id, "好了")


async def test_a_case_dispatched_straight_away_tells_the_resident_its_deadline(desk: Desk):
    from workflows.cards import local

    case = await reported(desk)
    grid = await grid_of(desk, case)
    await desk.press(staff(grid, "L"), "派遣", group=grid)
    await desk.press(staff(grid, "L"), "孙丽", group=grid)
    case = await desk.case()
    async with desk.sm() as s:
        at = local(desk.ctx(s), case.deadline_at, "%Y-%m-%d %H:%M")
    assert f"已派遣处理，预计 {at} 前办结" in await desk.last_text("r1")


async def test_a_red_card_waits_in_the_inbox_of_the_level_above_until_it_is_urged(desk: Desk):
    """Twice over its limit a case's 【督办】 notice goes to the group of the level above; its
    leader's /tasks lists it as 待督办 until someone there presses the holder (督办), and the
    /case view it opens has the 督办 button. Not the grid leader's, not two levels up."""
    from datetime import timedelta

    from workflows.clock import FixedClock
    from workflows.models import Node
    from workflows.routines.sweeps import run_sweep

    from .support import CH

    case = await reported(desk)
    grid = await grid_of(desk, case)
    leader, worker = staff(grid, "L"), staff(grid, "W1")
    async with desk.sm() as s:
        above = (await s.get(Node, (await s.get(Node, case.grid_id)).parent_id)).code  # the community
    await do(desk, cases.dispatch, await pid(desk, leader), case.id, assignee_id=await pid(desk, worker))
    case = await desk.case()
    await desk.send(f"{above}-L", "/tasks")
    assert case.number not in await desk.last_text(f"{above}-L")
    red_at = case.registered_at + 2 * (case.deadline_at - case.registered_at) + timedelta(minutes=1)
    await run_sweep(desk.sm, "deadlines", clock=FixedClock(red_at), channels=frozenset({CH}))
    assert "【督办】" in (await desk.last(f"g:{above}")).text
    desk.clock.set(red_at + timedelta(minutes=30))

    await desk.send(f"{above}-L", "/tasks")
    assert case.number in await desk.last_text(f"{above}-L") and "待督办（红牌）" in await desk.last_text(f"{above}-L")
    for other in (leader, "XH-ZX1"):  # the holder's own leader, and the street two levels up
        await desk.send(other, "/tasks")
        assert "待督办" not in await desk.last_text(other)
    await desk.press(f"{above}-L", case.number)
    await desk.press(f"{above}-L", "督办")
    await desk.send(f"{above}-L", "已超时限一倍，请今天办结")
    assert "【督办】" in await desk.last_text(worker) and "请今天办结" in await desk.last_text(worker)
    await desk.send(f"{above}-L", "/tasks")
    assert case.number not in await desk.last_text(f"{above}-L")
