"""Issue 9, the daily loop as a grid office lives it, walked by a resident, a leader and workers on
the terminal and on Telegram (python-telegram-bot against the fake Bot API), on both databases.

The same drivers as the contract suite; only the channels named in LOOP_CHANNELS run, to keep the
suite's time in check (the contract suite itself covers all four).
"""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from workflows.cards import local
from workflows.models import Case, CaseEvent, Node, Outbox

from .drivers import DRIVERS, Driver
from .test_contract import (
    GRID,
    INSIDE_CY01,
    LEADER,
    OTHER,
    RESIDENT,
    WORKER,
    latest_case,
    mentions,
    person_id,
    report,
    staffed,
)

pytestmark = pytest.mark.demo

LOOP_CHANNELS = ["terminal", "telegram-ptb"]
COMMUNITY, COMMUNITY_LEADER = "CY", "CY-L"  # 翠苑社区, 钱秀英
TEAM_A, TEAM_B = "WY-01", "WY-02"  # 物业维修队: 曹勇, 彭亮


@pytest.fixture(params=LOOP_CHANNELS)
async def d(request, sessionmaker):
    driver = DRIVERS[request.param](sessionmaker)
    await driver.start()
    try:
        yield driver
    finally:
        await driver.close()


async def dispatch_to_worker(d: Driver) -> None:
    await d.press(LEADER, "派遣", group=GRID)
    await d.press(LEADER, "孙丽", group=GRID)


async def finish(d: Driver, who: str = WORKER, result: str = "已更换灯泡，恢复照明") -> None:
    await d.press(who, "办结")
    await d.say(who, result)
    await d.press(who, "提交结果")


async def report_blocked_fire_exit(d: Driver, phone: str | None = None) -> None:
    """An urgent 消防安全隐患 (due the same day) inside CY-01, with or without a phone number."""
    await d.say(RESIDENT, "/report")
    await d.press(RESIDENT, "消防安全隐患")
    await d.say(RESIDENT, "楼道堆满杂物堵住消防通道")
    await d.press(RESIDENT, "下一步")
    await d.location(RESIDENT, *INSIDE_CY01)
    if phone:
        await d.say(RESIDENT, phone)
    else:
        await d.press(RESIDENT, "跳过")
    await d.press(RESIDENT, "提交")


async def escalate(d: Driver, preset: str) -> None:
    """The grid leader sends the case up to the community from the grid group's card."""
    await d.press(LEADER, "上报上级", group=GRID)
    await d.press(LEADER, preset, group=GRID)
    await d.press(LEADER, "确认", group=GRID)


def last(texts: list[str]) -> str:
    assert texts, "nothing received"
    return texts[-1]


# ====================================================================== 9.2 /tasks is each person's inbox


async def test_the_leaders_tasks_list_what_waits_for_him_overdue_first(d: Driver):
    await staffed(d)
    await report(d, description="小区门口路灯坏了三天")
    first = (await latest_case(d)).number
    await report(d, description="楼道灭火器过期")
    second = (await latest_case(d)).number

    await d.say(LEADER, "/tasks")
    inbox = last(d.private_texts(LEADER))
    assert first in inbox and second in inbox and "待立案" in inbox, inbox
    assert "没有待办" not in inbox

    # the button opens the card with the leader's buttons, without the group card
    await d.press(LEADER, first)
    assert mentions(d.private_texts(LEADER)[-1:], first, "描述")
    await d.press(LEADER, "立案")
    async with d.sm() as s:
        registered = (await s.execute(select(Case).where(Case.number == first))).scalar_one()
    assert registered.status == "registered"

    # four days on, the first case is past its limit: it comes first, marked, the other after it
    d.clock.advance(4 * 24 * 3600)
    await d.say(LEADER, "/tasks")
    inbox = last(d.private_texts(LEADER))
    assert "【已超期】" in inbox and inbox.index(first) < inbox.index(second), inbox
    assert "待派遣" in inbox.splitlines()[1] and first in inbox.splitlines()[1]

    # once dispatched the case leaves the leader's list and is in the worker's
    await d.press(LEADER, first)
    await d.press(LEADER, "派遣")
    await d.press(LEADER, "孙丽")
    await d.say(WORKER, "/tasks")
    assert mentions(d.private_texts(WORKER)[-1:], first, "待办理")
    await d.say(LEADER, "/tasks")
    assert first not in last(d.private_texts(LEADER))

    # the result waits for the leader's check
    await d.press(WORKER, first)
    await d.press(WORKER, "接收")
    await finish(d)
    assert "等待翠苑第一网格的网格长核查" in last(d.private_texts(WORKER))
    assert mentions(d.group_texts(GRID)[-1:], first, "等待核查：翠苑第一网格的网格长")  # the card says who checks
    await d.say(LEADER, "/tasks")
    assert mentions(d.private_texts(LEADER)[-1:], first, "待核查")
    # a worker with nothing to do is told so
    await d.say(OTHER, "/tasks")
    assert last(d.private_texts(OTHER)) == "您目前没有待办事件。"


# ====================================================================== 9.4 not fixed goes somewhere


async def test_unsatisfied_carries_its_reason_and_a_second_goes_up_for_supervision(d: Driver):
    await staffed(d)
    await d.as_staff(COMMUNITY_LEADER)
    await d.bind_group(COMMUNITY)
    await report(d)
    case = await latest_case(d)
    await dispatch_to_worker(d)
    await d.press(WORKER, "接收")
    await finish(d)
    await d.press(LEADER, "核查通过", group=GRID)
    assert mentions(d.private_texts(WORKER), case.number, "核查通过")  # the worker is told

    # 不满意 asks why first; the reason is on the group card and leads the reopen notice
    await d.press(RESIDENT, "不满意")
    assert "哪里不满意" in last(d.private_texts(RESIDENT))
    assert (await latest_case(d)).status == "closed"  # nothing happens before the reason
    await d.say(RESIDENT, "灯还是一闪一闪的")
    case = await latest_case(d)
    assert case.status == "registered" and case.reopen_count == 1 and case.result is None
    notice = mentions(d.group_texts(GRID), case.number, "灯还是一闪一闪的", "重新派遣")
    assert notice and notice[-1].index("灯还是一闪一闪的") < notice[-1].index("重新派遣")
    card = mentions(d.group_texts(GRID), "上报人不满意的原因：灯还是一闪一闪的")  # the card
    # the earlier result is history, not the current result
    assert card and "处理结果" not in card[-1] and "反馈办结" in card[-1]
    assert mentions(d.private_texts(RESIDENT), "已退回网格重新办理")
    assert mentions(d.private_texts(WORKER), "灯还是一闪一闪的")

    # re-dispatch, finish again, verify; the resident is still not satisfied
    before = d.delivered_count(WORKER)
    await dispatch_to_worker(d)
    # a new task card reaches the worker (not an edit of the first one, far up the chat)
    assert d.delivered_count(WORKER) == before + 1 and "【待办】" in last(d.private_texts(WORKER))
    await d.press(WORKER, "接收")
    await finish(d, result="更换了整套灯具")
    await d.press(LEADER, "核查通过", group=GRID)
    await d.press(RESIDENT, "不满意")
    await d.press(RESIDENT, "问题没有解决")
    assert (await latest_case(d)).status == "closed"  # a preset reason waits for confirmation
    await d.press(RESIDENT, "确认")
    case = await latest_case(d)
    async with d.sm() as s:
        community = (await s.execute(select(Node.id).where(Node.code == COMMUNITY))).scalar_one()
        actions = list((await s.execute(select(CaseEvent.action).where(CaseEvent.case_id == case.id))).scalars())
    assert actions.count("rated") == 2 and actions[-1] == "supervised"
    assert case.status == "registered" and case.reopen_count == 2 and case.level_node_id == community
    supervision = mentions(d.group_texts(COMMUNITY), "【督办】", case.number, "问题没有解决")
    assert supervision and "社区工作人员" in supervision[-1]
    assert mentions(d.private_texts(RESIDENT), case.number, "翠苑社区", "督办")
    assert mentions(d.group_texts(GRID), case.number, "已转 翠苑社区 督办")

    # the community holds it now: its staff dispatch from their own group's card
    await d.press(COMMUNITY_LEADER, "派遣", group=COMMUNITY)
    await d.press(COMMUNITY_LEADER, "物业维修队（默认）", group=COMMUNITY)
    assert (await latest_case(d)).status == "dispatched"


# ====================================================================== 9.8 team cases


async def test_when_one_team_member_takes_the_case_the_others_know(d: Driver):
    await staffed(d)
    for code in (TEAM_A, TEAM_B):
        await d.as_staff(code)
    await report(d)
    case = await latest_case(d)
    await d.press(LEADER, "派遣", group=GRID)
    await d.press(LEADER, "物业维修队（默认）", group=GRID)
    for code in (TEAM_A, TEAM_B):
        assert mentions(d.private_texts(code), "【待办】", case.number)

    await d.press(TEAM_A, "接收")
    case = await latest_case(d)
    assert case.status == "in_progress" and case.assignee_id == await person_id(d, TEAM_A)
    assert mentions(d.private_texts(TEAM_B)[-2:], case.number, "已由 曹勇 接收办理")
    # the other member's task card lost its buttons
    async with d.sm() as s:
        key = f"task:{case.id}:%:{await person_id(d, TEAM_B)}"
        card = (await s.execute(select(Outbox).where(Outbox.card_key.like(key))
                                .order_by(Outbox.id.desc()).limit(1))).scalar_one()
    assert card.status == "sent" and not card.payload.get("buttons") and "曹勇" in card.payload["text"]
    if d.name.startswith("telegram"):
        with pytest.raises(AssertionError, match="no button"):
            await d.press(TEAM_B, "接收")  # the edited message has no keyboard any more
    else:
        answer = await d.press(TEAM_B, "接收")  # the terminal keeps old lines on screen
        assert answer and "曹勇" in answer and "处置中" not in answer
    assert (await latest_case(d)).assignee_id == await person_id(d, TEAM_A)
    # the group card says who
    assert mentions(d.group_texts(GRID)[-1:], "物业维修队（曹勇）")


# ====================================================================== 9.7 the worker's task card


async def test_the_task_card_has_what_the_worker_needs_and_only_he_may_call(d: Driver):
    await staffed(d)
    await report_blocked_fire_exit(d, phone="139-1234-5678")
    case = await latest_case(d)
    await dispatch_to_worker(d)
    card = mentions(d.private_texts(WORKER), "【待办】", case.number)[-1]
    for part in ("紧急程度：紧急", "办结时限：", "地图：https://uri.amap.com/marker?position=", "139****5678"):
        assert part in card, (part, card)
    assert "13912345678" not in card

    await d.press(WORKER, "联系上报人")
    assert mentions(d.private_texts(WORKER)[-1:], case.number, "13912345678")

    # rework and verification reach the worker
    await d.press(WORKER, "接收")
    await finish(d, result="已清理杂物")
    await d.press(LEADER, "返工", group=GRID)
    await d.press(LEADER, "现场问题未解决", group=GRID)
    await d.press(LEADER, "确认", group=GRID)
    assert mentions(d.private_texts(WORKER)[-1:], case.number, "需返工", "现场问题未解决")
    await finish(d, result="杂物已全部清走")
    await d.press(LEADER, "核查通过", group=GRID)
    assert mentions(d.private_texts(WORKER)[-1:], case.number, "核查通过")

    # another worker cannot reveal the number by pressing the assignee's button
    answer = await d.press(OTHER, "联系上报人", seen_by=WORKER)
    # a refused private button is said once: a pop-up, or written into the chat it was pressed in
    assert (answer and "承办人" in answer) or mentions(d.private_texts(WORKER)[-1:], "承办人")
    assert not mentions(d.private_texts(OTHER), "13912345678")


# ====================================================================== 9.6 a decline is never a dead end


async def test_a_decline_says_why_and_where_to_go_and_a_preset_asks_first(d: Driver):
    await staffed(d)
    await report(d)
    case = await latest_case(d)
    await d.press(LEADER, "不予立案", group=GRID)
    await d.press(LEADER, "不属于受理范围", group=GRID)
    assert (await latest_case(d)).status == "reported"  # not before it is confirmed
    assert mentions(d.group_texts(GRID)[-1:], "不属于受理范围", "确认")
    await d.press(LEADER, "确认", group=GRID)
    assert (await latest_case(d)).status == "declined"
    told = mentions(d.private_texts(RESIDENT), case.number, "未予立案")[-1]
    assert "理由：不属于受理范围" in told
    assert "抢修电话" in told and "12345" in told  # the category's referral, then the hotline


# ====================================================================== 9.3 the promise is the deadline


def promised(texts: list[str], pattern: str) -> str:
    found = [m.group(1) for t in texts if (m := re.search(pattern, t))]
    assert found, (pattern, texts[-3:])
    return found[-1]


async def case_deadline(d: Driver, number: str) -> str:
    async with d.sm() as s:
        case = (await s.execute(select(Case).where(Case.number == number))).scalar_one()
        return local(d.ctx(s), case.deadline_at, "%Y-%m-%d %H:%M")


async def test_what_the_resident_is_promised_is_the_deadline_everyone_sees(d: Driver):
    await staffed(d)
    # an urgent 消防安全隐患: same day (立说立办); the promise at report is what registration sets
    await report_blocked_fire_exit(d)
    urgent = (await latest_case(d)).number
    at_report = promised(d.private_texts(RESIDENT), r"一般在 (\S+ \S+) 前办结")
    await d.press(LEADER, "立案", group=GRID)
    deadline = await case_deadline(d, urgent)
    assert at_report == deadline
    assert promised(d.private_texts(RESIDENT), urgent + r" 已立案，预计 (\S+ \S+) 前办结") == deadline
    assert mentions(d.group_texts(GRID)[-1:], urgent, f"办结时限：{deadline}")
    await dispatch_to_worker(d)
    assert mentions(d.private_texts(WORKER), "【待办】", urgent, f"办结时限：{deadline}")

    # an ordinary report registered two hours later: the resident is told the real, later time
    await report(d)
    ordinary = (await latest_case(d)).number
    at_report = promised(d.private_texts(RESIDENT), r"一般在 (\S+ \S+) 前办结")
    d.clock.advance(2 * 3600)
    await d.press(LEADER, "立案", group=GRID)
    deadline = await case_deadline(d, ordinary)
    assert deadline > at_report
    assert promised(d.private_texts(RESIDENT), ordinary + r" 已立案，预计 (\S+ \S+) 前办结") == deadline
    assert mentions(d.group_texts(GRID)[-1:], ordinary, f"办结时限：{deadline}")

    # reopened after the first limit ran out: the new limit runs from the reopen and is promised again
    await d.press(LEADER, "派遣", group=GRID)
    await d.press(LEADER, "孙丽", group=GRID)
    await d.press(WORKER, "接收")
    await finish(d)
    await d.press(LEADER, "核查通过", group=GRID)
    d.clock.advance(5 * 24 * 3600)
    await d.press(RESIDENT, "不满意")
    await d.say(RESIDENT, "灯还是不亮")
    reopened = await case_deadline(d, ordinary)
    async with d.sm() as s:
        now = local(d.ctx(s), d.clock.now(), "%Y-%m-%d %H:%M")
    assert reopened > now > deadline
    await d.press(LEADER, "派遣", group=GRID)
    await d.press(LEADER, "孙丽", group=GRID)
    assert promised(d.private_texts(RESIDENT), ordinary + r" 已派遣处理，预计 (\S+ \S+) 前办结") == reopened
    assert mentions(d.private_texts(WORKER)[-1:], "【待办】", ordinary, f"办结时限：{reopened}")


# ====================================================================== 9.9 words follow the level


async def test_words_follow_the_level_and_the_residents_own_timeline_says_you(d: Driver):
    await staffed(d)
    await d.as_staff(COMMUNITY_LEADER)
    await d.bind_group(COMMUNITY)
    for code in (TEAM_A, TEAM_B):
        await d.as_staff(code)
    await report(d)
    case = await latest_case(d)
    await escalate(d, "超出网格处置能力")
    assert (await latest_case(d)).level_node_id != case.grid_id
    # the community's card: who did what, actor first (not read as two people sent the case)
    assert mentions(d.group_texts(COMMUNITY)[-1:], case.number, "当前办理：翠苑社区", "张伟 上报上级 → 翠苑社区")
    await d.press(COMMUNITY_LEADER, "派遣", group=COMMUNITY)
    await d.press(COMMUNITY_LEADER, "物业维修队（默认）", group=COMMUNITY)
    await d.press(TEAM_A, "接收")
    await finish(d, who=TEAM_A, result="已修复")
    # who checks is named by the level that holds the case
    assert "翠苑社区的社区工作人员" in last(d.private_texts(TEAM_A))
    assert mentions(d.group_texts(COMMUNITY)[-1:], case.number, "等待核查：翠苑社区的社区工作人员")

    # the resident's own view: 您 for what they did, never their masked name
    await d.say(RESIDENT, f"/case {case.number}")
    own = last(d.private_texts(RESIDENT))
    assert case.number in own and "您 上报" in own and "王**" not in own, own


# ====================================================================== 9.4 up the tree and back down


async def test_the_level_above_sends_a_case_down_presses_and_remarks_from_the_chat(d: Driver):
    """下派 from the upper group's card, 督办 and 批注 from /case: the chat offers what the console
    offers, to the people the workflow allows, and each side hears it in a new message."""
    await staffed(d)
    await d.as_staff(COMMUNITY_LEADER)
    await d.bind_group(COMMUNITY)
    await report(d)
    case = await latest_case(d)
    await escalate(d, "需要多部门协调")
    async with d.sm() as s:
        grid = (await s.execute(select(Node).where(Node.code == GRID))).scalar_one()

    # the community sends it back down to the grid where it happened, with its instructions
    await d.press(COMMUNITY_LEADER, "更多", group=COMMUNITY)
    await d.press(COMMUNITY_LEADER, "下派", group=COMMUNITY)
    await d.press(COMMUNITY_LEADER, f"{grid.name}（事件所在网格）", group=COMMUNITY)
    await d.press(COMMUNITY_LEADER, "请属地网格核实处置", group=COMMUNITY)
    assert mentions(d.group_texts(COMMUNITY)[-1:], "下派要求：请属地网格核实处置", "确认提交吗")  # not 理由
    await d.press(COMMUNITY_LEADER, "确认", group=COMMUNITY)
    case = await latest_case(d)
    assert case.status == "registered" and case.level_node_id == grid.id
    assert mentions(d.group_texts(COMMUNITY), case.number, f"已下派至 {grid.name}")
    told = mentions(d.group_texts(GRID), "【下派】翠苑社区", case.number, "请属地网格核实处置")
    assert told and "请网格长派遣办理" in told[-1]
    assert mentions(d.private_texts(RESIDENT), case.number, f"已交由 {grid.name} 办理", "前办结")
    await dispatch_to_worker(d)  # from the new message's buttons
    assert (await latest_case(d)).status == "dispatched"

    # 督办 from above, through /case: the worker and the grid's group hear it
    await d.say(COMMUNITY_LEADER, f"/case {case.number}")
    await d.press(COMMUNITY_LEADER, "督办")
    await d.say(COMMUNITY_LEADER, "居民反映强烈，请今天修好")
    assert mentions(d.private_texts(COMMUNITY_LEADER), f"已督办事件 {case.number}", "承办人已收到")
    assert mentions(d.private_texts(WORKER), "【督办】翠苑社区", case.number, "请今天修好")
    assert mentions(d.group_texts(GRID), "【督办】翠苑社区", case.number, f"/case {case.number}")
    # 批注: a remark in the file that changes nothing else
    await d.say(COMMUNITY_LEADER, f"/case {case.number}")
    await d.press(COMMUNITY_LEADER, "批注")
    await d.say(COMMUNITY_LEADER, "注意夜间施工安全")
    assert mentions(d.private_texts(COMMUNITY_LEADER), f"批注已记入事件 {case.number}")
    async with d.sm() as s:
        events = list((await s.execute(select(CaseEvent.action, CaseEvent.note)
                                       .where(CaseEvent.case_id == case.id))).all())
    assert ("sent_down", "请属地网格核实处置") in events
    assert ("urged", "居民反映强烈，请今天修好") in events and ("commented", "注意夜间施工安全") in events
    assert (await latest_case(d)).status == "dispatched"

    # the worker holds the task: no 督办 for him; the grid's own leader may remark but not press
    await d.say(WORKER, f"/case {case.number}")
    with pytest.raises(AssertionError, match="no button"):
        await d.press(WORKER, "督办")
    await d.say(LEADER, f"/case {case.number}")
    with pytest.raises(AssertionError, match="no button"):
        await d.press(LEADER, "督办")
