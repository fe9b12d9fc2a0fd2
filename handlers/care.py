"""Care visits (/visit) and a look at one record (/care CODE) — private chats only.

/visit: pick the person (buttons, due first; a partner's people while covering), see their
record, the situation (正常 / 需要帮助 / 不在家), notes, optional photos, the location, then one
step records it (workflows.care.record_visit). Every list and record shown is in the access log.
"""

from __future__ import annotations

from sqlalchemy import select

from workflows import care
from workflows.cards import local
from workflows.care_models import CarePerson
from workflows.models import Case

from .registry import action, command, flow
from .turn import Turn

SITUATION_LABELS = {"fine": "正常", "help": "需要帮助", "absent": "不在家"}
MAX_BUTTONS = 24


async def _record_text(turn: Turn, person, household, node, visits) -> str:
    t = turn.t
    lines = [t("【关爱对象】{name}（{kind}）", name=person.name, kind=t(person.care_type)),
             t("住址：{grid} {code} {where}", grid=node.name, code=household.code,
               where=" ".join(x for x in (household.building, household.door) if x)),
             t("走访频次：每 {n} 天一次；应访日期：{due}", n=person.frequency_days, due=person.next_due.isoformat())]
    if person.contact_name or person.contact_phone:
        lines.append(t("联系人：{who} {phone}", who=person.contact_name or "", phone=person.contact_phone or ""))
    if person.notes:
        lines.append(t("备注：{notes}", notes=person.notes))
    if visits:
        v = visits[0]
        lines.append(t("上次走访：{at} {situation}", at=local(turn.ctx, v.at, "%m-%d %H:%M"),
                       situation=t(SITUATION_LABELS.get(v.situation, v.situation))))
    return "\n".join(lines)


@command("visit", "登记关爱走访（独居老人、困难家庭等）", private=True, staff_only=True)
async def visit(turn: Turn) -> None:
    entries = await care.visit_list(turn.ctx, turn.person.id) if turn.person else []
    if not entries:
        await turn.say(turn.t("您的走访名单上没有关爱对象。"))
        return
    shown = entries[:MAX_BUTTONS]
    await care.log_access(turn.ctx, turn.person.id, [e.person.id for e in shown], "list")
    rows = []
    for e in shown:
        label = f"{e.household.code} {e.person.name} {e.person.next_due.strftime('%m-%d')}"
        if e.for_person_id != turn.person.id:
            label = turn.t("{label}（代岗）", label=label)
        rows.append([await turn.button(label, "visit.pick", care_person_id=e.person.id)])
    await turn.say(turn.t("请选择要登记走访的对象（按应访日期排列）："), buttons=rows)


@action("visit.pick")
async def pick(turn: Turn, args: dict) -> None:
    if turn.person is None:
        turn.alert(turn.t("这个按钮已失效，请使用最新的消息。"))
        return
    entry = await care.entry_for(turn.ctx, turn.person.id, args.get("care_person_id"))
    person, household, node, visits = await care.detail(turn.ctx, turn.person.id, entry.person.id)
    await turn.start("visit", "situation", care_person_id=person.id, photos=[])
    await turn.say(await _record_text(turn, person, household, node, visits) + "\n" + turn.t("走访情况如何？"),
                   buttons=[[await turn.button(label, "visit.situation", situation=key)
                             for key, label in SITUATION_LABELS.items()],
                            [await turn.button("取消", "flow.cancel")]])


async def _open(turn: Turn, step: str):
    conv = await turn.conversation()
    if conv is None or conv.flow != "visit" or conv.step != step:
        turn.alert(turn.t("这个操作已经结束或已取消。"))
        return None
    return conv


@action("visit.situation")
async def situation(turn: Turn, args: dict) -> None:
    if await _open(turn, "situation") is None or args.get("situation") not in care.SITUATIONS:
        return
    await turn.step("notes", situation=args["situation"])
    text = turn.t("请简单记录走访情况（可附照片）。")
    if args["situation"] == "help":
        text = turn.t("请写明需要什么帮助，将登记为事件并推送网格群。群里只显示户编号，请不要写姓名、病情等个人信息。")
        await turn.say(text, buttons=[[await turn.button("取消", "flow.cancel")]])
        return
    await turn.say(text, buttons=[[await turn.button("跳过", "visit.skip")], [await turn.button("取消", "flow.cancel")]])


@action("visit.skip")
async def skip(turn: Turn, args: dict) -> None:
    conv = await _open(turn, "notes")
    if conv is None:
        return
    if conv.data.get("situation") == "help":
        await turn.say(turn.t("请写明需要什么帮助。"))
        return
    await _ask_location(turn, None)


async def _ask_location(turn: Turn, notes: str | None) -> None:
    await turn.step("location", notes=notes)
    await turn.say(turn.t("请发送您当前的位置（位置消息），用于核对是否到户。无法定位请点击「无法定位」。"),
                   buttons=[[await turn.button("无法定位", "visit.no_location")],
                            [await turn.button("取消", "flow.cancel")]])


@action("visit.no_location")
async def no_location(turn: Turn, args: dict) -> None:
    conv = await _open(turn, "location")
    if conv is not None:
        await _submit(turn, dict(conv.data), None, None)


@flow("visit")
async def visit_flow(turn: Turn, data: dict) -> None:
    conv = await turn.conversation()
    media = [m.as_dict() for m in turn.inbound.media]
    if media:
        data["photos"] = [*data.get("photos", []), *media][:9]
        await turn.step(conv.step, photos=data["photos"])
    if conv.step == "situation":
        await turn.say(turn.t("请点击上面的按钮选择走访情况：正常、需要帮助或不在家。"))
    elif conv.step == "notes":
        if not turn.text:
            await turn.say(turn.t("照片已收下（共 {n} 张）。请再用文字记录走访情况。", n=len(data.get("photos", []))))
            return
        await _ask_location(turn, turn.text[:1000])
    elif conv.step == "location":
        if turn.inbound.location is None:
            if media:
                await turn.say(turn.t("照片已收下（共 {n} 张）。", n=len(data["photos"])))
            await turn.say(turn.t("请发送位置消息（不是文字）；无法定位请点击「无法定位」。"),
                           buttons=[[await turn.button("无法定位", "visit.no_location")]])
            return
        await _submit(turn, data, *turn.inbound.location)


async def _submit(turn: Turn, data: dict, lat: float | None, lon: float | None) -> None:
    v = await care.record_visit(turn.ctx, turn.person.id, data["care_person_id"], data["situation"],
                                notes=data.get("notes"), latitude=lat, longitude=lon, photos=data.get("photos"))
    await turn.finish()
    person = await turn.session.get(CarePerson, v.care_person_id)
    lines = [turn.t("走访已登记：{situation}。下次应访日期：{due}。",
                    situation=turn.t(SITUATION_LABELS[v.situation]), due=person.next_due.isoformat())]
    if v.warning:
        lines.append(turn.t("已记录提示：{w}", w=v.warning))
    if v.case_id:
        case = await turn.session.get(Case, v.case_id)
        lines.append(turn.t("需要的帮助已登记为事件 {number}，已推送网格群。", number=case.number))
    await turn.say("\n".join(lines))


@command("care", "查看关爱对象档案：/care 编码", private=True, staff_only=True)
async def care_record(turn: Turn) -> None:
    code = turn.text.strip()
    if not code or turn.person is None:
        await turn.say(turn.t("请写关爱对象的编码，例如：/care CY01-H01-1"))
        return
    found = (await turn.session.execute(select(CarePerson.id).where(CarePerson.code == code))).scalar_one_or_none()
    if found is None:
        await turn.say(turn.t("找不到编码为 {code} 的关爱对象。", code=code))
        return
    person, household, node, visits = await care.detail(turn.ctx, turn.person.id, found)
    await turn.say(await _record_text(turn, person, household, node, visits))
