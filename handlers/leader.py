"""The leader's buttons on a case card: register, dispatch, ask for more, decline, escalate, verify …"""

from __future__ import annotations

from sqlalchemy import select

from workflows import cases
from workflows.errors import NotAllowed
from workflows.models import Case, Category
from workflows.tree import can_dispatch, dispatcher_title, get_node, grids

from .reasons import ask_reason, reason_for
from .registry import action, flow
from .turn import Turn


async def _fresh(turn: Turn, args: dict) -> Case | None:
    """The case, if the card the button came from is still current and the presser may act."""
    case = await cases.get_case(turn.ctx, args["case_id"])
    if case.status != args.get("status") or case.level_node_id != args.get("level"):
        turn.alert(turn.t("该事件已有新进展，这个按钮已失效。"))
        return None
    node = await get_node(turn.ctx, case.level_node_id)
    if not await can_dispatch(turn.ctx, turn.person.id if turn.person else None, node):
        raise NotAllowed("只有 {node} 的{role}（或其指定的代理人）可以进行此操作。", node=node.name,
                         role=dispatcher_title(node))
    return case


def _ref(case: Case) -> dict:
    return {"case_id": case.id, "status": case.status, "level": case.level_node_id}


@action("case.register")
async def register(turn: Turn, args: dict) -> None:
    if (case := await _fresh(turn, args)) is None:
        return
    await cases.register(turn.ctx, turn.person.id, case.id)
    turn.alert(turn.t("已立案。"))


@action("case.assign")
async def assign_menu(turn: Turn, args: dict) -> None:
    if (case := await _fresh(turn, args)) is None:
        return
    rows = []
    node = await get_node(turn.ctx, case.level_node_id)
    workers, teams, default_team = await cases.dispatch_choices(turn.ctx, case)
    for w in workers:
        rows.append([await turn.button(w.name, "case.assign_to", person_id=w.id, **_ref(case))])
    for team in teams:
        label = team.name + (turn.t("（默认）") if team.id == default_team else "")
        rows.append([await turn.button(label, "case.assign_to", team_id=team.id, **_ref(case))])
    if not rows:
        await turn.say(turn.t("{node} 没有可派遣的网格员或处置团队，请先在导入文件中添加人员。", node=node.name))
        return
    rows.append([await turn.button("取消", "flow.cancel")])
    await turn.say(turn.t("事件 {number}：请选择承办人或处置团队：", number=case.number), buttons=rows)


@action("case.assign_to")
async def assign_to(turn: Turn, args: dict) -> None:
    if (case := await _fresh(turn, args)) is None:
        return
    case = await cases.dispatch(turn.ctx, turn.person.id, case.id, assignee_id=args.get("person_id"),
                                team_id=args.get("team_id"))
    await turn.say(turn.t("事件 {number} 已派遣。", number=case.number))


@action("case.ask_more")
async def ask_more(turn: Turn, args: dict) -> None:
    if (case := await _fresh(turn, args)) is None:
        return
    await ask_reason(turn, "ask_more", **_ref(case))


@reason_for("ask_more", "请写明需要上报人补充的内容：", ["请补充现场照片", "请补充具体位置"],
            label="需要补充")
async def ask_more_with(turn: Turn, data: dict, question: str) -> None:
    if await _fresh(turn, data):
        await cases.ask_more(turn.ctx, turn.person.id, data["case_id"], question)
        await turn.say(turn.t("已请上报人补充材料。"))


@action("case.decline")
async def decline(turn: Turn, args: dict) -> None:
    if (case := await _fresh(turn, args)) is None:
        return
    await ask_reason(turn, "decline", **_ref(case))


@reason_for("decline", "请写明不予立案的理由（上报人会收到理由和可以求助的去处）：",
            ["重复上报", "不属于受理范围", "属于自家事，已告知办理途径", "信息不实"])
async def decline_with(turn: Turn, data: dict, reason: str) -> None:
    if await _fresh(turn, data):
        case = await cases.decline(turn.ctx, turn.person.id, data["case_id"], reason)
        await turn.say(turn.t("事件 {number} 不予立案。", number=case.number))


@action("case.escalate")
async def escalate(turn: Turn, args: dict) -> None:
    if (case := await _fresh(turn, args)) is None:
        return
    await ask_reason(turn, "escalate", **_ref(case))


@reason_for("escalate", "请写明上报上级的理由：", ["超出网格处置能力", "需要多部门协调"])
async def escalate_with(turn: Turn, data: dict, reason: str) -> None:
    if await _fresh(turn, data):
        case = await cases.escalate(turn.ctx, turn.person.id, data["case_id"], reason)
        level = await get_node(turn.ctx, case.level_node_id)
        await turn.say(turn.t("事件 {number} 已上报至 {node}。", number=case.number, node=level.name))


@action("case.verify_pass")
async def verify_pass(turn: Turn, args: dict) -> None:
    if (case := await _fresh(turn, args)) is None:
        return
    await cases.verify(turn.ctx, turn.person.id, case.id, passed=True)
    turn.alert(turn.t("核查通过，已结案。"))


@action("case.rework")
async def rework(turn: Turn, args: dict) -> None:
    if (case := await _fresh(turn, args)) is None:
        return
    await ask_reason(turn, "rework", **_ref(case))


@reason_for("rework", "请写明返工的理由：", ["现场问题未解决", "缺少处置后照片"])
async def rework_with(turn: Turn, data: dict, reason: str) -> None:
    if await _fresh(turn, data):
        case = await cases.verify(turn.ctx, turn.person.id, data["case_id"], passed=False, reason=reason)
        await turn.say(turn.t("事件 {number} 已退回返工。", number=case.number))


# ---------------------------------------------------------------- "more": corrections and 直报

@action("case.more")
async def more(turn: Turn, args: dict) -> None:
    if (case := await _fresh(turn, args)) is None:
        return
    ref = _ref(case)
    rows = []
    if await cases.send_down_targets(turn.ctx, turn.person.id, case):
        rows.append([await turn.button("下派", "case.pick_below", **ref)])
    rows.append([await turn.button("改类别", "case.pick_category", **ref),
                 await turn.button("改网格", "case.pick_grid", **ref)])
    if case.status in ("reported", "needs_info", "registered"):
        rows.append([await turn.button("合并到其他事件", "case.merge", **ref)])
    rows.append([await turn.button("直报指挥中心", "case.direct", **ref)])
    rows.append([await turn.button("取消", "flow.cancel")])
    await turn.say(turn.t("事件 {number}：请选择操作：", number=case.number), buttons=rows)


# ---------------------------------------------------------------- 下派: an upper level hands it down

@action("case.pick_below")
async def pick_below(turn: Turn, args: dict) -> None:
    if (case := await _fresh(turn, args)) is None:
        return
    targets = await cases.send_down_targets(turn.ctx, turn.person.id, case)
    if not targets:
        turn.alert(turn.t("该事件现在不能下派。"))
        return
    rows = []
    for n in targets[:30]:
        label = n.name + (turn.t("（事件所在网格）") if n.id == case.grid_id else "")
        rows.append([await turn.button(label, "case.send_down", node_id=n.id, **_ref(case))])
    rows.append([await turn.button("取消", "flow.cancel")])
    await turn.say(turn.t("事件 {number}：请选择下派到哪一级：", number=case.number), buttons=rows)


@action("case.send_down")
async def send_down(turn: Turn, args: dict) -> None:
    if (case := await _fresh(turn, args)) is None:
        return
    await ask_reason(turn, "send_down", node_id=args["node_id"], **_ref(case))


@reason_for("send_down", "请写明下派要求：", ["请属地网格核实处置", "请按时限办结并反馈"],
            label="下派要求")
async def send_down_with(turn: Turn, data: dict, note: str) -> None:
    if await _fresh(turn, data):
        case = await cases.send_down(turn.ctx, turn.person.id, data["case_id"], data["node_id"], note)
        level = await get_node(turn.ctx, case.level_node_id)
        await turn.say(turn.t("事件 {number} 已下派至 {node}。", number=case.number, node=level.name))


@action("case.pick_category")
async def pick_category(turn: Turn, args: dict) -> None:
    if (case := await _fresh(turn, args)) is None:
        return
    cats = (await turn.session.execute(select(Category).order_by(Category.sort, Category.id))).scalars()
    rows = [[await turn.button(c.name, "case.move_category", category_id=c.id, **_ref(case))]
            for c in cats if c.id != case.category_id]
    await turn.say(turn.t("请选择新的类别："), buttons=rows)


@action("case.move_category")
async def move_category(turn: Turn, args: dict) -> None:
    if (case := await _fresh(turn, args)) is None:
        return
    await ask_reason(turn, "move_category", category_id=args["category_id"], **_ref(case))


@reason_for("move_category", "请写明改类别的理由：", ["上报时类别选错"])
async def move_category_with(turn: Turn, data: dict, reason: str) -> None:
    if await _fresh(turn, data):
        case = await cases.move_category(turn.ctx, turn.person.id, data["case_id"], data["category_id"], reason)
        await turn.say(turn.t("事件 {number} 已改类别。", number=case.number))


@action("case.pick_grid")
async def pick_grid(turn: Turn, args: dict) -> None:
    if (case := await _fresh(turn, args)) is None:
        return
    rows = [[await turn.button(g.name, "case.move_grid", grid_id=g.id, **_ref(case))]
            for g in await grids(turn.ctx) if g.id != case.grid_id][:30]
    await turn.say(turn.t("请选择新的网格："), buttons=rows)


@action("case.move_grid")
async def move_grid(turn: Turn, args: dict) -> None:
    if (case := await _fresh(turn, args)) is None:
        return
    await ask_reason(turn, "move_grid", grid_id=args["grid_id"], **_ref(case))


@reason_for("move_grid", "请写明改网格的理由：", ["不属于本网格"])
async def move_grid_with(turn: Turn, data: dict, reason: str) -> None:
    if await _fresh(turn, data):
        case = await cases.move_grid(turn.ctx, turn.person.id, data["case_id"], data["grid_id"], reason)
        grid = await get_node(turn.ctx, case.grid_id)
        await turn.say(turn.t("事件 {number} 已转到 {grid}。", number=case.number, grid=grid.name))


@action("case.direct")
async def direct(turn: Turn, args: dict) -> None:
    if (case := await _fresh(turn, args)) is None:
        return
    await ask_reason(turn, "direct", **_ref(case))


@reason_for("direct", "请写明直报指挥中心的理由（重大、紧急、突发）：", ["重大突发事件", "紧急安全隐患"])
async def direct_with(turn: Turn, data: dict, reason: str) -> None:
    if await _fresh(turn, data):
        case = await cases.direct_report(turn.ctx, turn.person.id, data["case_id"], reason)
        level = await get_node(turn.ctx, case.level_node_id)
        await turn.say(turn.t("事件 {number} 已直报 {node}。", number=case.number, node=level.name))


@action("case.merge")
async def merge(turn: Turn, args: dict) -> None:
    if (case := await _fresh(turn, args)) is None:
        return
    await turn.start("merge", "number", **_ref(case))
    await turn.say(turn.t("请输入要合并到的事件编号："), buttons=[[await turn.button("取消", "flow.cancel")]])


@flow("merge")
async def merge_flow(turn: Turn, data: dict) -> None:
    number = cases.find_number(turn.text)
    if not number:
        await turn.say(turn.t("请输入有效的事件编号，例如 XH-20261123-001，或发送 /cancel 取消。"))
        return
    await turn.finish()
    if await _fresh(turn, data):
        case = await cases.merge(turn.ctx, turn.person.id, data["case_id"], number, turn.t("重复上报"))
        await turn.say(turn.t("事件 {number} 已合并到 {main}。", number=case.number, main=number))
