"""Patrol check-in (/patrol) and the worker's diary (/diary, 民情日记).

/patrol: the grid (when the worker has several or covers a partner's), the location, the
checklist item by item (正常 / 有问题, a problem is described in words), optional photos, then
one step records the patrol and files every problem as a case (source "patrol").
"""

from __future__ import annotations

from workflows.cards import local
from workflows.models import Case, Node
from workflows.routines import patrols

from .registry import GRID_STAFF, WORKERS, action, command, flow
from .turn import Turn

# typed answers in either language; the buttons work the same in every language
OK_WORDS = {"正常", "好", "无", "没有问题", "无问题", "ok", "normal", "fine", "good", "no problem", "none"}
BAD_WORDS = {"有问题", "问题", "异常", "有", "problem", "issue", "bad", "not ok"}


def parse_answer(text: str) -> bool | None:
    word = text.strip().lower()
    if word in OK_WORDS:
        return True
    if word in BAD_WORDS:
        return False
    return None


async def ask_item(turn: Turn, flow_name: str, items: list[str], index: int) -> None:
    item = items[index]
    await turn.say(turn.t("第 {i}/{n} 项：{item}", i=index + 1, n=len(items), item=turn.t(item)),
                   buttons=[[await turn.button("正常", f"{flow_name}.answer", index=index, ok=True),
                             await turn.button("有问题", f"{flow_name}.answer", index=index, ok=False)],
                            [await turn.button("取消", "flow.cancel")]])


@command("patrol", "巡查打卡", private=True, roles=WORKERS)
async def patrol(turn: Turn) -> None:
    grids = await patrols.duty_grids(turn.ctx, turn.person.id) if turn.person else []
    if not grids:
        await turn.say(turn.t("您不是网格员，没有巡查任务。"))
        return
    if len(grids) == 1:
        await _begin(turn, grids[0][0], grids[0][1])
        return
    rows = [[await turn.button(node.name if who == turn.person.id else turn.t("{grid}（代岗）", grid=node.name),
                               "patrol.grid", node_id=node.id, for_person_id=who)] for node, who in grids]
    await turn.say(turn.t("请选择要巡查的网格："), buttons=rows)


@action("patrol.grid")
async def choose_grid(turn: Turn, args: dict) -> None:
    allowed = {(n.id, w) for n, w in await patrols.duty_grids(turn.ctx, turn.person.id)} if turn.person else set()
    if (args.get("node_id"), args.get("for_person_id")) not in allowed:
        turn.alert(turn.t("这个按钮已失效，请使用最新的消息。"))
        return
    node = await turn.session.get(Node, args["node_id"])
    await _begin(turn, node, args["for_person_id"])


async def _begin(turn: Turn, node: Node, for_person_id: int) -> None:
    await turn.start("patrol", "location", node_id=node.id, for_person_id=for_person_id,
                     items=patrols.checklist(node), answers=[], photos=[], index=0)
    await turn.say(turn.t("开始巡查 {grid}。请先发送您当前的位置（位置消息）。无法定位请点击「无法定位」。", grid=node.name),
                   buttons=[[await turn.button("无法定位", "patrol.no_location")],
                            [await turn.button("取消", "flow.cancel")]])


@action("patrol.no_location")
async def no_location(turn: Turn, args: dict) -> None:
    conv = await turn.conversation()
    if conv is None or conv.flow != "patrol" or conv.step != "location":
        turn.alert(turn.t("这个操作已经结束或已取消。"))
        return
    await turn.step("item", latitude=None, longitude=None, warning="未提供位置", index=0)
    await turn.say(turn.t("未提供位置，将记录在巡查记录中。"))
    await ask_item(turn, "patrol", conv.data["items"], 0)


@flow("patrol")
async def patrol_flow(turn: Turn, data: dict) -> None:
    conv = await turn.conversation()
    step, items = conv.step, data["items"]
    media = [m.as_dict() for m in turn.inbound.media]
    if media:
        await turn.step(conv.step, photos=[*data.get("photos", []), *media][:9])
    if step == "location":
        if turn.inbound.location is None:
            await turn.say(turn.t("请发送位置消息（不是文字）；无法定位请点击「无法定位」。"),
                           buttons=[[await turn.button("无法定位", "patrol.no_location")]])
            return
        lat, lon = turn.inbound.location
        node = await turn.session.get(Node, data["node_id"])
        distance, warning = patrols.location_warning(node, lat, lon)
        await turn.step("item", latitude=lat, longitude=lon, warning=warning, index=0)
        if warning:
            await turn.say(turn.t("注意：您的位置距 {grid} 边界约 {d} 米，不在网格范围内。本次巡查照常记录，并记下这一提示。",
                                  grid=node.name, d=f"{distance:.0f}"))
        else:
            await turn.say(turn.t("位置已确认。"))
        await ask_item(turn, "patrol", items, 0)
        return
    if step == "item":
        index = data["index"]
        ok = parse_answer(turn.text) if turn.text else None
        if ok is None:
            if media and not turn.text:
                await turn.say(turn.t("照片已收下（共 {n} 张）。", n=len(conv.data.get("photos", []))))
            await turn.say(turn.t("请回答「正常」或「有问题」（可点下面的按钮）。"))
            await ask_item(turn, "patrol", items, index)
            return
        await _answer(turn, data, index, ok)
        return
    if step == "note":
        if not turn.text:
            if media:
                await turn.say(turn.t("照片已收下。请再用文字简单描述发现的问题。"))
            else:
                await turn.say(turn.t("请用文字描述发现的问题。"))
            return
        answers = [*data["answers"], {"item": items[data["index"]], "ok": False, "note": turn.text[:500]}]
        await _next(turn, data, answers)
        return
    if step == "photos":
        if media:
            await turn.say(turn.t("照片已收下（共 {n} 张）。可继续发送，或点击「提交」。", n=len(conv.data["photos"])),
                           buttons=[[await turn.button("提交", "patrol.submit")]])
        else:
            await turn.say(turn.t("请发送现场照片，或点击「提交」完成巡查。"),
                           buttons=[[await turn.button("提交", "patrol.submit")]])


@action("patrol.answer")
async def answer_button(turn: Turn, args: dict) -> None:
    conv = await turn.conversation()
    if conv is None or conv.flow != "patrol" or conv.step != "item" or conv.data.get("index") != args.get("index"):
        turn.alert(turn.t("这个按钮已失效，请使用最新的消息。"))
        return
    await _answer(turn, dict(conv.data), args["index"], bool(args.get("ok")))


async def _answer(turn: Turn, data: dict, index: int, ok: bool) -> None:
    if ok:
        await _next(turn, data, [*data["answers"], {"item": data["items"][index], "ok": True}])
        return
    await turn.step("note")
    await turn.say(turn.t("请描述「{item}」发现的问题（可附照片）：", item=turn.t(data["items"][index])))


async def _next(turn: Turn, data: dict, answers: list[dict]) -> None:
    index = len(answers)
    if index < len(data["items"]):
        await turn.step("item", answers=answers, index=index)
        await ask_item(turn, "patrol", data["items"], index)
        return
    await turn.step("photos", answers=answers, index=index)
    problems = sum(1 for a in answers if not a["ok"])
    await turn.say(turn.t("检查完毕：{n} 项有问题。可发送现场照片（可选），然后点击「提交」。", n=problems),
                   buttons=[[await turn.button("提交", "patrol.submit")], [await turn.button("取消", "flow.cancel")]])


@action("patrol.submit")
async def submit(turn: Turn, args: dict) -> None:
    conv = await turn.conversation()
    if conv is None or conv.flow != "patrol" or conv.step != "photos":
        turn.alert(turn.t("这个操作已经结束或已取消。"))
        return
    d = dict(conv.data)
    checkin = await patrols.record_checkin(turn.ctx, turn.person.id, d["node_id"], for_person_id=d["for_person_id"],
                                           latitude=d.get("latitude"), longitude=d.get("longitude"),
                                           answers=d["answers"], photos=d.get("photos", []))
    await turn.finish()
    lines = [turn.t("巡查打卡成功：{day} {slot} 班次。", day=checkin.day, slot=checkin.slot)]
    if checkin.warning:
        lines.append(turn.t("已记录提示：{w}", w=checkin.warning))
    if checkin.case_ids:
        numbers = []
        for cid in checkin.case_ids:
            numbers.append((await turn.session.get(Case, cid)).number)
        lines.append(turn.t("发现的问题已登记为事件：{numbers}，已推送网格群。", numbers="、".join(numbers)))
    await turn.say("\n".join(lines))


@command("diary", "民情日记：/diary 内容；只发 /diary 查看最近的日记", private=True, roles=GRID_STAFF)
async def diary(turn: Turn) -> None:
    if turn.person is None:
        return
    if turn.text:
        await patrols.write_diary(turn.ctx, turn.person.id, turn.text)
        await turn.say(turn.t("民情日记已记下。"))
        return
    entries = await patrols.recent_diary(turn.ctx, turn.person.id)
    if not entries:
        await turn.say(turn.t("您还没有写过民情日记。写日记：/diary 今天走访了3户独居老人……"))
        return
    lines = [turn.t("最近的民情日记：")]
    for e in entries:
        lines.append(f"{local(turn.ctx, e.at, '%m-%d %H:%M')} {e.text[:100]}")
    await turn.say("\n".join(lines))
