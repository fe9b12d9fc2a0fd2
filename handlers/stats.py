"""/stats in a work group, /notice from a centre, and the screening checklist dialogue."""

from __future__ import annotations

from sqlalchemy import select

from workflows.models import GroupBinding, Node
from workflows.routines import notices, reports, screening

from .patrol import ask_item, parse_answer
from .registry import CENTRE, STAFF, action, command, flow
from .turn import Turn


async def group_node(turn: Turn) -> Node | None:
    i = turn.inbound
    if not i.is_group:
        return None
    row = (await turn.session.execute(select(GroupBinding.node_id).where(
        GroupBinding.channel == i.channel, GroupBinding.chat_id == i.chat_id, GroupBinding.status == "active"))).first()
    return await turn.session.get(Node, row[0]) if row else None


@command("stats", "本群所属网格（或辖区）的本周统计", private=False, group=True, roles=STAFF)
async def stats(turn: Turn) -> None:
    node = await group_node(turn)
    if node is None:
        return
    msg = await reports.on_demand(turn.ctx, turn.t, node)
    await turn.say(msg.text, media=msg.media)


@command("notice", "发布通知到下辖所有工作群：/notice 内容", private=True, group=True, roles=CENTRE)
async def notice(turn: Turn) -> None:
    node = await group_node(turn)
    sent = await notices.send(turn.ctx, turn.person.id if turn.person else None, turn.text,
                              node.id if node else None)
    text = turn.t("通知已发出：写入 {d} 个工作群。", d=sent.delivered)
    if sent.failed:
        shown = "、".join(sent.missing[:10]) + ("…" if sent.failed > 10 else "")
        text += turn.t("另有 {f} 个下级节点没有绑定工作群，未能送达：{codes}", f=sent.failed, codes=shown)
    await turn.say(text)


@action("screening.start")
async def screening_start(turn: Turn, args: dict) -> None:
    kind = screening.KINDS.get(args.get("kind"))
    node = await screening.check_open(turn.ctx, turn.person.id if turn.person else None, args.get("kind"),
                                      args.get("node_id"), args.get("period"))
    items = list(kind.items)
    await turn.start("screening", "item", kind=kind.name, node_id=node.id, period=args["period"], items=items,
                     answers=[], index=0)
    await turn.say(turn.t("开始填报 {node}「{title}」（{period}），共 {n} 项。", node=node.name, title=turn.t(kind.title),
                          period=args["period"], n=len(items)))
    await ask_item(turn, "screening", items, 0)


@action("screening.answer")
async def screening_answer(turn: Turn, args: dict) -> None:
    conv = await turn.conversation()
    if conv is None or conv.flow != "screening" or conv.step != "item" or conv.data.get("index") != args.get("index"):
        turn.alert(turn.t("这个按钮已失效，请使用最新的消息。"))
        return
    await _answer(turn, dict(conv.data), bool(args.get("ok")))


@flow("screening")
async def screening_flow(turn: Turn, data: dict) -> None:
    conv = await turn.conversation()
    if conv.step == "item":
        ok = parse_answer(turn.text) if turn.text else None
        if ok is None:
            await turn.say(turn.t("请回答「正常」或「有问题」（可点下面的按钮）。"))
            await ask_item(turn, "screening", data["items"], data["index"])
            return
        await _answer(turn, data, ok)
        return
    if not turn.text:
        await turn.say(turn.t("请用文字描述排查发现的情况。"))
        return
    await _next(turn, data, [*data["answers"], {"item": data["items"][data["index"]], "ok": False,
                                                "note": turn.text[:500]}])


async def _answer(turn: Turn, data: dict, ok: bool) -> None:
    if ok:
        await _next(turn, data, [*data["answers"], {"item": data["items"][data["index"]], "ok": True}])
        return
    await turn.step("note")
    await turn.say(turn.t("请描述「{item}」的情况：", item=turn.t(data["items"][data["index"]])))


async def _next(turn: Turn, data: dict, answers: list[dict]) -> None:
    if len(answers) < len(data["items"]):
        await turn.step("item", answers=answers, index=len(answers))
        await ask_item(turn, "screening", data["items"], len(answers))
        return
    rec = await screening.record(turn.ctx, turn.person.id, data["kind"], data["node_id"], data["period"], answers)
    await turn.finish()
    await turn.say(turn.t("排查已上报（{period}）：{n} 项正常，{m} 项有情况。", period=rec.period,
                          n=len(answers) - rec.issues, m=rec.issues))
