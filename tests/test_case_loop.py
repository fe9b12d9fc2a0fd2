"""Every transition of the case loop and every refusal, called the way the dialogues call them."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from workflows import cases
from workflows.context import Ctx
from workflows.errors import Invalid, NotAllowed, NotFound, WrongState
from workflows.models import Case, CaseEvent, Category, Node, Outbox, Person, Team

from .support import Desk

pytestmark = pytest.mark.demo


class World:
    """The demo street with chats on the test channel, and short-hands for its people."""

    def __init__(self, sm, clock) -> None:
        self.sm = sm
        self.clock = clock
        self.desk = Desk(sm, clock)

    async def setup(self) -> World:
        await self.desk.setup_chats()
        async with self.sm() as s:
            self.ids = {p.code: p.id for p in (await s.execute(select(Person).where(Person.code.is_not(None)))).scalars()}
            self.nodes = {n.code: n.id for n in (await s.execute(select(Node))).scalars()}
            self.cats = {c.name: c.id for c in (await s.execute(select(Category))).scalars()}
            self.teams = {t.code: t.id for t in (await s.execute(select(Team))).scalars()}
        async with self.sm() as s, s.begin():
            self.resident = Person(name="李居民", phone="13912345678", created_at=self.clock.now())
            s.add(self.resident)
            await s.flush()
            from workflows.models import Account

            s.add(Account(channel="test", external_id="r1", chat_id="p:r1", person_id=self.resident.id,
                          created_at=self.clock.now()))
        return self

    async def do(self, fn, *args, **kw):
        async with self.sm() as s, s.begin():
            ctx = Ctx(session=s, clock=self.clock, channels=frozenset({"test"}))
            return await fn(ctx, *args, **kw)

    async def report(self, grid: str = "CY-01", category: str = "市政设施", text: str = "路灯不亮了", **kw) -> Case:
        return await self.do(cases.report, reporter_id=self.resident.id, category_id=self.cats[category],
                             description=text, grid_id=self.nodes[grid], **kw)

    async def fresh(self, case: Case) -> Case:
        async with self.sm() as s:
            return await s.get(Case, case.id)

    async def events(self, case: Case) -> list[str]:
        async with self.sm() as s:
            rows = await s.execute(select(CaseEvent.action).where(CaseEvent.case_id == case.id).order_by(CaseEvent.id))
            return list(rows.scalars())

    async def outbox_to(self, chat: str) -> list[str]:
        async with self.sm() as s:
            rows = await s.execute(select(Outbox.payload).where(Outbox.chat_id == chat).order_by(Outbox.id))
            return [p["text"] for p in rows.scalars()]


@pytest.fixture
async def w(sessionmaker, clock) -> World:
    return await World(sessionmaker, clock).setup()


L, W1, W2 = "CY01-L", "CY01-W1", "CY01-W2"


async def test_the_seven_steps(w: World):
    case = await w.report()
    assert case.status == "reported"
    assert case.number.startswith("XH-20261123-")
    card = await w.desk.last("g:CY-01")
    assert case.number in card.text and "立案" in card.labels()
    assert "13912345678" not in card.text and "139****5678" in card.text and "李**" in card.text

    await w.do(cases.register, w.ids[L], case.id)
    case = await w.fresh(case)
    assert case.status == "registered" and case.deadline_at == case.registered_at + timedelta(hours=72)
    assert any("已立案" in t for t in await w.outbox_to("p:r1"))

    await w.do(cases.dispatch, w.ids[L], case.id, assignee_id=w.ids[W1])
    assert (await w.fresh(case)).status == "dispatched"
    task = await w.desk.last(f"p:{W1}")
    assert case.number in task.text and {"接收", "退回", "办结"} <= set(task.labels())

    await w.do(cases.accept, w.ids[W1], case.id)
    w.clock.advance(hours=5)
    await w.do(cases.finish, w.ids[W1], case.id, "已更换灯泡", [{"kind": "photo", "ref": "p1", "channel": "test"}])
    assert (await w.fresh(case)).status == "resolved"
    group = await w.desk.messages("g:CY-01")
    card = [m for m in group if m.card_key][-1]
    assert {"核查通过", "返工"} <= set(card.labels())
    # the leader sees the after-photos before verifying
    assert group[-1].card_key is None and group[-1].payload["media"][0]["ref"] == "p1"

    await w.do(cases.verify, w.ids[L], case.id, passed=True)
    case = await w.fresh(case)
    assert case.status == "closed" and case.closed_at is not None
    rating = await w.desk.last("p:r1")
    assert rating.labels() == ["满意", "基本满意", "不满意"] and "已更换灯泡" in rating.text

    await w.do(cases.rate, w.resident.id, case.id, "satisfied", "很快")
    case = await w.fresh(case)
    assert case.rating == "satisfied" and case.status == "closed"
    assert await w.events(case) == ["reported", "registered", "dispatched", "accepted", "resolved", "verified", "rated"]
    # every version of the group card carries the same key, so the channel edits it in place
    keys = {m.card_key for m in await w.desk.messages("g:CY-01") if m.card_key}
    assert keys == {f"case:{case.id}:{w.nodes['CY-01']}"}


async def test_ask_for_more_then_supplement(w: World):
    case = await w.report()
    await w.do(cases.ask_more, w.ids[L], case.id, "请补充照片")
    assert (await w.fresh(case)).status == "needs_info"
    assert "请补充照片" in await w.desk.last_text("r1")
    with pytest.raises(NotAllowed):
        await w.do(cases.supplement, w.ids[W1], case.id, "不是我报的")
    await w.do(cases.supplement, w.resident.id, case.id, "", [{"kind": "photo", "ref": "x", "channel": "test"}])
    case = await w.fresh(case)
    assert case.status == "reported" and len(case.attachments) == 1


async def test_decline_needs_a_reason(w: World):
    case = await w.report()
    with pytest.raises(Invalid):
        await w.do(cases.decline, w.ids[L], case.id, "   ")
    assert (await w.fresh(case)).status == "reported"
    await w.do(cases.decline, w.ids[L], case.id, "重复上报")
    assert (await w.fresh(case)).status == "declined"
    assert "重复上报" in await w.desk.last_text("r1")


async def test_hand_back_and_team_dispatch(w: World):
    case = await w.report()
    await w.do(cases.dispatch, w.ids[L], case.id, assignee_id=w.ids[W1])  # registers on the way
    await w.do(cases.hand_back, w.ids[W1], case.id, "需要专业维修")
    case = await w.fresh(case)
    assert case.status == "registered" and case.assignee_id is None
    await w.do(cases.dispatch, w.ids[L], case.id, team_id=w.teams["T-WY"])
    async with w.sm() as s:
        from workflows.models import TeamMember

        members = list((await s.execute(select(TeamMember.person_id).where(TeamMember.team_id == w.teams["T-WY"]))).scalars())
    for pid in members:
        code = next(c for c, i in w.ids.items() if i == pid)
        assert case.number in await w.desk.last_text(code)
    await w.do(cases.accept, members[1], case.id)
    case = await w.fresh(case)
    assert case.assignee_id == members[1] and case.status == "in_progress"
    with pytest.raises(NotAllowed):  # the team member who did not accept is no longer the assignee
        await w.do(cases.finish, w.ids[W2], case.id, "x")
    assert await w.events(case) == ["reported", "registered", "dispatched", "handed_back", "dispatched", "accepted"]


async def test_escalate_up_the_tree_and_back_down(w: World):
    case = await w.report()
    await w.do(cases.escalate, w.ids[L], case.id, "需要社区协调")
    case = await w.fresh(case)
    assert case.level_node_id == w.nodes["CY"] and case.status == "registered"
    assert case.number in (await w.desk.last("g:CY")).text
    # the grid leader no longer holds it
    with pytest.raises(NotAllowed):
        await w.do(cases.escalate, w.ids[L], case.id, "again")
    community_leader = await _leader_of(w, "CY")
    await w.do(cases.escalate, community_leader, case.id, "需要街道协调")
    case = await w.fresh(case)
    assert case.level_node_id == w.nodes["XH"]
    street = await _leader_of(w, "XH")
    await w.do(cases.dispatch, street, case.id, team_id=w.teams["T-CG"])
    # the grid card follows along without buttons, the street card has them
    grid_card = await w.desk.last("g:CY-01")
    assert grid_card.labels() == [] and "城管" in grid_card.text
    await w.do(cases.hand_back, await _member_of(w, "T-CG"), case.id, "不属于城管")
    await w.do(cases.send_down, street, case.id, w.nodes["CY-01"], "请网格处理")
    assert (await w.fresh(case)).level_node_id == w.nodes["CY-01"]


async def test_escalation_stops_at_the_top(w: World):
    case = await w.report()
    centre = await _leader_of(w, "SFS")
    async with w.sm() as s, s.begin():
        c = await s.get(Case, case.id)
        c.level_node_id = w.nodes["SFS"]
    with pytest.raises(WrongState):
        await w.do(cases.escalate, centre, case.id, "no higher")


async def test_direct_report_tells_every_level(w: World):
    case = await w.report(category="突发事件", text="燃气泄漏")
    await w.do(cases.direct_report, w.ids[L], case.id, "紧急")
    case = await w.fresh(case)
    assert case.level_node_id == w.nodes["SFS"] and case.urgency == "urgent"
    for code in ("CY-01", "CY", "XH", "SFQ", "SFS"):
        assert w.nodes[code] in case.card_nodes
        assert case.number in (await w.desk.last(f"g:{code}")).text


async def test_rework(w: World):
    case = await w.report()
    await w.do(cases.dispatch, w.ids[L], case.id, assignee_id=w.ids[W1])
    await w.do(cases.finish, w.ids[W1], case.id, "好了")
    with pytest.raises(Invalid):
        await w.do(cases.verify, w.ids[L], case.id, passed=False, reason="")
    await w.do(cases.verify, w.ids[L], case.id, passed=False, reason="灯还是不亮")
    case = await w.fresh(case)
    assert case.status == "in_progress" and case.rework_count == 1
    assert "灯还是不亮" in await w.desk.last_text(W1)


async def _close(w: World, case: Case) -> None:
    await w.do(cases.dispatch, w.ids[L], case.id, assignee_id=w.ids[W1])
    await w.do(cases.finish, w.ids[W1], case.id, "处理好了")
    await w.do(cases.verify, w.ids[L], case.id, passed=True)


async def test_unsatisfied_reopens_then_goes_up_for_supervision(w: World):
    """Issue 9.4: the first 不满意 goes back to the grid, a second one to the level above (督办)."""
    case = await w.report()
    await _close(w, case)
    await w.do(cases.rate, w.resident.id, case.id, "unsatisfied", "没修好")
    case = await w.fresh(case)
    assert case.status == "registered" and case.reopen_count == 1 and case.rating is None
    assert case.level_node_id == w.nodes["CY-01"] and case.result is None
    notice = [m for m in await w.desk.messages("g:CY-01") if "不满意" in m.text and m.card_key is None]
    assert notice and notice[-1].text.index("没修好") < notice[-1].text.index("重新派遣")
    card = [m for m in await w.desk.messages("g:CY-01") if m.card_key][-1]
    assert "上报人不满意的原因：没修好" in card.text and "处理结果" not in card.text  # no stale result
    assert any("没修好" in t for t in await w.outbox_to("p:CY01-W1"))  # the former assignee is told
    await _close(w, case)
    await w.do(cases.rate, w.resident.id, case.id, "unsatisfied", "还是不亮")
    case = await w.fresh(case)
    assert case.status == "registered" and case.level_node_id == w.nodes["CY"] and case.reopen_count == 2
    assert w.nodes["CY"] in case.card_nodes
    assert "supervised" in await w.events(case)
    upper = [t for t in await w.outbox_to("g:CY") if "【督办】" in t]
    assert upper and "还是不亮" in upper[-1] and "社区工作人员" in upper[-1]
    assert any("督办" in t and "翠苑社区" in t for t in await w.outbox_to("p:r1"))
    # the community may act on it now; the grid leader no longer holds it
    with pytest.raises(NotAllowed):
        await w.do(cases.dispatch, w.ids[L], case.id, assignee_id=w.ids[W1])
    # the community sends it down to the grid; closed there and still not fixed, it goes on up
    await w.do(cases.send_down, w.ids["CY-L"], case.id, w.nodes["CY-01"], "请网格重点跟进")
    await _close(w, case)
    await w.do(cases.rate, w.resident.id, case.id, "unsatisfied", "第三次了")
    case = await w.fresh(case)
    assert case.level_node_id == w.nodes["XH"] and case.reopen_count == 3
    assert any("【督办】" in t and "第三次了" in t and "街道中心工作人员" in t for t in await w.outbox_to("g:XH"))
    # on up to the city, which keeps it: a "not fixed" never falls off the top of the tree
    for holder, staff_code, up in (("XH", "XH-ZX1", "SFQ"), ("SFQ", "SFQ-ZX1", "SFS"), ("SFS", "SFS-ZX1", "SFS")):
        await w.do(cases.send_down, w.ids[staff_code], case.id, w.nodes["CY-01"])
        await _close(w, case)
        await w.do(cases.rate, w.resident.id, case.id, "unsatisfied", f"{holder} 之后仍未解决")
        case = await w.fresh(case)
        assert case.level_node_id == w.nodes[up] and case.status == "registered"
    assert any("已是最高一级" in t for t in await w.outbox_to("g:SFS"))


async def test_merge_duplicate(w: World):
    main = await w.report()
    dup = await w.report(text="同一盏路灯")
    await w.do(cases.merge, w.ids[L], dup.id, main.number, "重复")
    dup = await w.fresh(dup)
    assert dup.status == "merged" and dup.merged_into_id == main.id
    with pytest.raises(Invalid):
        await w.do(cases.merge, w.ids[L], main.id, main.number)
    await _close(w, main)
    assert any(dup.number in t and "已办结" in t for t in await w.outbox_to("p:r1"))


async def test_move_category_and_grid(w: World):
    case = await w.report()
    await w.do(cases.register, w.ids[L], case.id)
    await w.do(cases.move_category, w.ids[L], case.id, w.cats["消防安全隐患"], "其实是消防问题")
    case = await w.fresh(case)
    fire = w.cats["消防安全隐患"]
    assert case.category_id == fire
    async with w.sm() as s:
        hours = (await s.get(Category, fire)).time_limit_hours
    assert case.deadline_at - case.registered_at <= timedelta(hours=max(hours, 24))
    with pytest.raises(Invalid):
        await w.do(cases.move_grid, w.ids[L], case.id, w.nodes["CY"], "not a grid")
    await w.do(cases.move_grid, w.ids[L], case.id, w.nodes["CY-02"], "不属于本网格")
    case = await w.fresh(case)
    assert case.grid_id == w.nodes["CY-02"] and case.level_node_id == w.nodes["CY-02"]
    assert case.number in (await w.desk.last("g:CY-02")).text
    assert await w.events(case) == ["reported", "registered", "moved_category", "moved_grid"]


async def test_cancel_only_before_registration(w: World):
    case = await w.report()
    with pytest.raises(NotAllowed):
        await w.do(cases.cancel, w.ids[L], case.id)
    await w.do(cases.cancel, w.resident.id, case.id)
    assert (await w.fresh(case)).status == "cancelled"
    other = await w.report()
    await w.do(cases.register, w.ids[L], other.id)
    with pytest.raises(WrongState):
        await w.do(cases.cancel, w.resident.id, other.id)


async def test_refusals_change_nothing(w: World):
    case = await w.report()
    before = await w.desk.count(CaseEvent), await w.desk.count(Outbox)
    other_leader = w.ids["WX01-L"]
    with pytest.raises(NotAllowed):
        await w.do(cases.register, other_leader, case.id)
    with pytest.raises(NotAllowed):
        await w.do(cases.register, w.ids[W1], case.id)  # a worker cannot dispatch
    with pytest.raises(NotAllowed):
        await w.do(cases.accept, w.ids[W1], case.id)
    with pytest.raises(NotAllowed):
        await w.do(cases.rate, w.ids[L], case.id, "satisfied")
    with pytest.raises(Invalid):
        await w.do(cases.rate, w.resident.id, case.id, "great")
    with pytest.raises(Invalid):
        await w.do(cases.dispatch, w.ids[L], case.id)  # neither a person nor a team
    with pytest.raises(NotFound):
        await w.do(cases.dispatch, w.ids[L], case.id, assignee_id=w.resident.id)  # residents are not handlers
    assert (await w.desk.count(CaseEvent), await w.desk.count(Outbox)) == before
    assert (await w.fresh(case)).status == "reported"


async def test_actions_on_a_closed_case_are_refused(w: World):
    case = await w.report()
    await _close(w, case)
    for fn, args in [(cases.register, ()), (cases.escalate, ("x",)), (cases.decline, ("x",)),
                     (cases.dispatch, ()), (cases.verify, ())]:
        kw = {"assignee_id": w.ids[W1]} if fn is cases.dispatch else {"passed": True} if fn is cases.verify else {}
        with pytest.raises(WrongState):
            await w.do(fn, w.ids[L], case.id, *args, **kw)


async def test_bad_reports(w: World):
    with pytest.raises(Invalid):
        await w.report(text="  ")
    with pytest.raises(Invalid):
        await w.report(text="长" * 20_000)
    with pytest.raises(NotFound):
        await w.do(cases.report, reporter_id=w.resident.id, category_id=99999, description="x",
                   grid_id=w.nodes["CY-01"])
    with pytest.raises(Invalid):
        await w.report(grid="CY")  # a community is not a grid
    assert await w.desk.count(Case) == 0


async def test_numbers_are_sequential_per_street_and_day(w: World):
    a = await w.report()
    b = await w.report(grid="WX-01")
    assert a.number == "XH-20261123-001" and b.number == "XH-20261123-002"
    w.clock.advance(days=1)
    c = await w.report()
    assert c.number == "XH-20261124-001"
    async with w.sm() as s:
        found = await cases.case_by_number(Ctx(session=s, clock=w.clock), " xh-20261124-001 ")
    assert found.id == c.id
    assert cases.find_number("查询 XH-20261124-001 进度") == "XH-20261124-001"


async def test_urgent_case_is_due_the_same_day(w: World):
    case = await w.report(category="突发事件")
    await w.do(cases.register, w.ids[L], case.id, urgency="urgent")
    case = await w.fresh(case)
    # registered 09:00 Shanghai, due by the end of that day
    from zoneinfo import ZoneInfo

    due = case.deadline_at.astimezone(ZoneInfo("Asia/Shanghai"))
    assert (due.date().isoformat(), due.hour, due.minute) == ("2026-11-23", 23, 59)


async def test_audit_trail_keeps_every_step(w: World):
    case = await w.report()
    await _close(w, case)
    async with w.sm() as s:
        events = list((await s.execute(select(CaseEvent).where(CaseEvent.case_id == case.id))).scalars())
        n = (await s.execute(select(func.count()).select_from(CaseEvent))).scalar_one()
    assert n == len(events) == 5
    assert all(e.at is not None and e.action for e in events)
    assert events[0].actor_id == w.resident.id and events[-1].actor_id == w.ids[L]


async def _leader_of(w: World, node_code: str) -> int:
    from workflows.models import Assignment

    async with w.sm() as s:
        row = await s.execute(select(Assignment.person_id).where(
            Assignment.node_id == w.nodes[node_code], Assignment.role.in_(["leader", "centre_staff"])).limit(1))
        pid = row.scalar_one_or_none()
    assert pid, f"demo has no leader for {node_code}"
    return pid


async def _member_of(w: World, team_code: str) -> int:
    from workflows.models import TeamMember

    async with w.sm() as s:
        return (await s.execute(select(TeamMember.person_id).where(
            TeamMember.team_id == w.teams[team_code]).limit(1))).scalar_one()
