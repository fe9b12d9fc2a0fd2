"""/ledger: a leader or centre staff member picks a ledger and a period and receives the Excel file."""

from __future__ import annotations

import io

from workflows import ledgers, media
from workflows.ledger_xlsx import write_xlsx
from workflows.models import Node
from workflows.routines.common import local_now

from .registry import action, command
from .stats import group_node
from .turn import Turn

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
MAX_CHAT_FILE = 10 * 1024 * 1024  # larger ledgers: the command line (`gridbot ledger`)


async def _allowed(turn: Turn, node: Node | None) -> bool:
    if node is None or not await ledgers.may_export(turn.ctx, turn.person.id if turn.person else None, node):
        await turn.say(turn.t("只有本级及上级的网格长、指挥中心工作人员可以导出台账。"))
        return False
    return True


@command("ledger", "导出台账（Excel）：事件、巡查、民情日记、请销假、考核表", private=True, group=True,
         roles=frozenset({"leader", "standin", "centre_staff", "admin"}))
async def ledger(turn: Turn) -> None:
    if turn.inbound.is_group:
        node = await group_node(turn)
        if node is None:
            await turn.say(turn.t("本群还没有绑定网格，不能导出台账。"))
            return
        nodes = [node]
    else:
        nodes = await ledgers.export_nodes(turn.ctx, turn.person.id) if turn.person else []
    if not nodes:
        await _allowed(turn, None)
        return
    if len(nodes) > 1:
        rows = [[await turn.button(n.name, "ledger.node", node=n.id)] for n in nodes]
        await turn.say(turn.t("导出哪一级的台账？"), rows)
        return
    await _kinds(turn, nodes[0])


@action("ledger.node")
async def pick_node(turn: Turn, args: dict) -> None:
    await _kinds(turn, await turn.session.get(Node, args["node"]))


async def _kinds(turn: Turn, node: Node | None) -> None:
    if not await _allowed(turn, node):
        return
    rows = [[await turn.button(ledgers.KIND_TITLES[k], "ledger.kind", node=node.id, kind=k)] for k in ledgers.KINDS]
    await turn.say(turn.t("导出{node}的哪一种台账？", node=node.name), rows)


@action("ledger.kind")
async def pick_kind(turn: Turn, args: dict) -> None:
    node = await turn.session.get(Node, args["node"])
    if not await _allowed(turn, node):
        return
    buttons = [await turn.button(label, "ledger.make", node=node.id, kind=args["kind"], period=name)
               for name, label in ledgers.PERIODS.items()]
    await turn.say(turn.t("{kind}：导出哪个时段？", kind=turn.t(ledgers.KIND_TITLES[args["kind"]])),
                   [buttons[:2], buttons[2:4], buttons[4:]])


@action("ledger.make")
async def make(turn: Turn, args: dict) -> None:
    node = await turn.session.get(Node, args["node"])
    if not await _allowed(turn, node):  # asked again: a group's buttons can be pressed by anyone in it
        return
    today = local_now(turn.ctx, node.timezone).date()
    first, last = ledgers.period(args["period"], today)
    book = await ledgers.ledger(turn.ctx, turn.t, args["kind"], node, first, last)
    buf = io.BytesIO()
    n = await write_xlsx(turn.t, book, buf)
    data = buf.getvalue()
    title = turn.t(ledgers.KIND_TITLES[args["kind"]])
    if len(data) > MAX_CHAT_FILE:
        await turn.say(turn.t("{title}有 {n} 行，文件太大，不能在聊天中发送。请在服务器上运行：gridbot ledger {kind} "
                              "--node {code} --from {first} --to {last}", title=title, n=n, kind=args["kind"],
                              code=node.code, first=first, last=last))
        return
    name = f"{title}-{node.name}-{first}-{last}.xlsx"
    stored = await media.store_bytes(turn.ctx, data, "file", name, XLSX, sender_id=turn.person.id)
    await turn.say(turn.t("{title}（{node}，{first} 至 {last}）：共 {n} 行。", title=title, node=node.name,
                          first=first, last=last, n=n), media=[stored])
