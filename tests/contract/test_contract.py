"""The contract every channel keeps: the same scenarios, run through each channel's real runtime
(terminal, Telegram on python-telegram-bot, Telegram on aiogram, WeChat Work), on the demo street.

The drivers (drivers.py) hide only how a person acts on each platform and how we read what the
platform received; everything asserted here holds on every channel.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from workflows.models import Case, CaseEvent, Conversation, InboundSeen, Outbox, Person

from .drivers import Driver

pytestmark = pytest.mark.demo

LEADER, WORKER, OTHER = "CY01-L", "CY01-W1", "CY01-W2"  # 张伟 leads CY-01; 孙丽, 马超 work there
RESIDENT = "王大妈"
GRID = "CY-01"
INSIDE_CY01 = (30.29, 120.105)  # inside CY-01's boundary in workflows/data/demo.yaml


async def staffed(d: Driver) -> None:
    for code in (LEADER, WORKER, OTHER):
        await d.as_staff(code)
    await d.bind_group(GRID)


async def report(d: Driver, who: str = RESIDENT, description: str = "小区门口路灯坏了三天") -> None:
    await d.say(who, "/report")
    await d.press(who, "市政设施")
    await d.say(who, description)
    await d.press(who, "下一步")
    await d.location(who, *INSIDE_CY01)
    await d.press(who, "跳过")  # no phone number
    assert any("请确认上报内容" in t for t in d.private_texts(who)[-2:]), d.private_texts(who)[-2:]
    await d.press(who, "提交")


async def latest_case(d: Driver) -> Case | None:
    async with d.sm() as s:
        return (await s.execute(select(Case).order_by(Case.id.desc()).limit(1))).scalar_one_or_none()


async def count(d: Driver, model, *where) -> int:
    async with d.sm() as s:
        return (await s.execute(select(func.count()).select_from(model).where(*where))).scalar_one()


async def person_id(d: Driver, code: str) -> int:
    async with d.sm() as s:
        return (await s.execute(select(Person.id).where(Person.code == code))).scalar_one()


def mentions(texts: list[str], *words: str) -> list[str]:
    return [t for t in texts if all(w in t for w in words)]


# ====================================================================== the whole loop


async def test_whole_loop_from_report_to_rating(driver: Driver):
    d = driver
    await staffed(d)
    await report(d)
    case = await latest_case(d)
    assert case.status == "reported" and case.description == "小区门口路灯坏了三天"
    assert case.latitude == pytest.approx(INSIDE_CY01[0]) and case.longitude == pytest.approx(INSIDE_CY01[1])
    assert mentions(d.private_texts(RESIDENT), case.number, "上报成功")
    # the group card carries the case number
    assert mentions(d.group_texts(GRID), case.number)

    # the leader dispatches to a worker (buttons in the group card, or privately where groups have none)
    await d.press(LEADER, "派遣", group=GRID)
    await d.press(LEADER, "孙丽", group=GRID)
    case = await latest_case(d)
    assert case.status == "dispatched" and case.assignee_id == await person_id(d, WORKER)
    assert mentions(d.private_texts(WORKER), "【待办】", case.number)

    await d.press(WORKER, "接收")
    assert (await latest_case(d)).status == "in_progress"
    await d.press(WORKER, "办结")
    await d.say(WORKER, "已更换灯泡，恢复照明")
    await d.press(WORKER, "提交结果")
    case = await latest_case(d)
    assert case.status == "resolved" and case.result == "已更换灯泡，恢复照明"

    answer = await d.press(LEADER, "核查通过", group=GRID)
    assert answer == "核查通过，已结案。"
    assert (await latest_case(d)).status == "closed"
    assert mentions(d.group_texts(GRID), case.number, "已结案")

    assert mentions(d.private_texts(RESIDENT), "请对处理结果进行评价")
    await d.press(RESIDENT, "满意")
    case = await latest_case(d)
    assert case.status == "closed" and case.rating == "satisfied"
    async with d.sm() as s:
        actions = list((await s.execute(select(CaseEvent.action).where(CaseEvent.case_id == case.id)
                                        .order_by(CaseEvent.id))).scalars())
    assert actions == ["reported", "registered", "dispatched", "accepted", "resolved", "verified", "rated"]
    assert await count(d, Outbox, Outbox.status != "sent", Outbox.status != "superseded") == 0
    assert all(d.send_attempts(RESIDENT))  # nothing was refused along the way


# ====================================================================== a refusal


async def test_a_worker_pressing_the_leaders_button_is_refused(driver: Driver):
    d = driver
    await staffed(d)
    await report(d)
    events = await count(d, CaseEvent)
    # the leader's 立案, as the leader sees it (on WeChat Work: the leader's private card, forwarded)
    answer = await d.press(WORKER, "立案", group=GRID, seen_by=LEADER)
    assert answer and "网格长" in answer and "只有" in answer
    case = await latest_case(d)
    assert case.status == "reported" and case.assignee_id is None
    assert await count(d, CaseEvent) == events
    # the leader's own press still works afterwards
    await d.press(LEADER, "立案", group=GRID)
    assert (await latest_case(d)).status == "registered"


# ====================================================================== a restart mid-dialogue


async def test_a_restart_in_the_middle_of_a_report_resumes(driver: Driver):
    d = driver
    await staffed(d)
    await d.say(RESIDENT, "/report")
    await d.press(RESIDENT, "市政设施")
    await d.restart()  # a new runtime and a new office on the same database
    await d.say(RESIDENT, "路灯不亮")
    assert mentions(d.private_texts(RESIDENT)[-1:], "下一步") or mentions(d.private_texts(RESIDENT)[-1:], "照片")
    await d.press(RESIDENT, "下一步")
    await d.location(RESIDENT, *INSIDE_CY01)
    await d.press(RESIDENT, "跳过")
    await d.press(RESIDENT, "提交")
    case = await latest_case(d)
    assert case.description == "路灯不亮" and case.status == "reported"
    assert mentions(d.group_texts(GRID), case.number)
    # nothing was handled twice across the restart, and the dialogue is over
    assert len(mentions(d.private_texts(RESIDENT), "请选择问题类别")) == 1
    assert await count(d, Conversation) == 0


# ====================================================================== a duplicate inbound


async def test_the_same_event_twice_has_one_effect(driver: Driver):
    d = driver
    await d.say(RESIDENT, "/report", times=2)  # the platform delivers the very same event twice
    assert len(mentions(d.private_texts(RESIDENT), "请选择问题类别")) == 1
    await d.press(RESIDENT, "市政设施", times=2)
    after_press = d.delivered_count(RESIDENT)
    async with d.sm() as s:
        step = (await s.execute(select(Conversation.step))).scalar_one()

    # and once more, to a new process (Telegram: an update never confirmed; WeChat Work: a retry
    # arriving after a restart, when only the database remembers the event)
    await d.restart()
    await d.repeat_last(RESIDENT)
    assert d.delivered_count(RESIDENT) == after_press
    assert d.office.handled[-1][1].duplicate
    async with d.sm() as s:
        assert (await s.execute(select(Conversation.step))).scalar_one() == step
    assert await count(d, InboundSeen) == 2
    assert len(mentions(d.private_texts(RESIDENT), "请选择问题类别")) == 1


# ====================================================================== a rate-limit answer


async def test_a_rate_limit_answer_is_waited_out_and_delivered_once(driver: Driver):
    d = driver
    if not d.platform_limits:
        # the terminal: no windows to keep, and a burst goes out at once, none held back
        assert d.adapter.windows == ()
        for _ in range(5):
            await d.say(RESIDENT, "/start")
        assert len(mentions(d.private_texts(RESIDENT), "请选择要办理的事项")) == 5
        async with d.sm() as s:
            rows = list((await s.execute(select(Outbox))).scalars())
        assert rows and all(r.status == "sent" and r.attempts == 1 and r.error is None for r in rows)
        return

    d.fail_next_send(RESIDENT)
    await d.say(RESIDENT, "/start")
    assert d.send_attempts(RESIDENT) == [False, True]  # refused once, then sent
    assert len(mentions(d.private_texts(RESIDENT), "请选择要办理的事项")) == 1
    assert d.delivered_count(RESIDENT) == 1
    async with d.sm() as s:
        row = (await s.execute(select(Outbox).where(Outbox.chat_id == d.private_chat(RESIDENT)))).scalar_one()
    # held for as long as the platform asked, then sent; a rate-limit answer is no failed attempt
    assert row.status == "sent" and row.attempts == 1
    assert row.not_before - row.created_at >= timedelta(seconds=d.rate_limit_wait)
    assert row.sent_at >= row.not_before
