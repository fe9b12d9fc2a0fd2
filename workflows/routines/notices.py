"""通知公告: a centre's staff send a notice to every bound group below their node."""

from __future__ import annotations

from sqlalchemy import select

from ..context import Ctx
from ..errors import Invalid, NotAllowed
from ..models import Assignment, GroupBinding, Node, Role
from ..outbox import Msg
from ..tree import descendants
from .common import OutboxBatch
from .models import Notice

SENDERS = (Role.centre_staff, Role.admin)


async def sender_nodes(ctx: Ctx, person_id: int) -> list[Node]:
    rows = await ctx.session.execute(
        select(Node).join(Assignment, Assignment.node_id == Node.id)
        .where(Assignment.person_id == person_id, Assignment.role.in_([str(r) for r in SENDERS])).order_by(Node.id))
    return list(rows.scalars())


async def send(ctx: Ctx, author_id: int | None, text: str, node_id: int | None = None) -> Notice:
    """node_id: the node to send from (e.g. the group's node); default the sender's highest centre."""
    text = (text or "").strip()
    if not text:
        raise Invalid("请在命令后写上通知内容，例如：/notice 本周六上午开展消防演练")
    if len(text) > 1500:
        raise Invalid("通知太长了（{n} 字），请控制在 1500 字以内。", n=len(text))
    nodes = await sender_nodes(ctx, author_id) if author_id else []
    if not nodes:
        raise NotAllowed("只有上级中心的工作人员（中心人员或管理员）可以发布通知。")
    node = None
    if node_id is not None:
        from ..tree import ancestors

        here = await ctx.session.get(Node, node_id)
        chain = {here.id, *(n.id for n in await ancestors(ctx, here))} if here else set()
        node = next((n for n in nodes if n.id in chain), None)
        if node is None:
            raise NotAllowed("您不是本群所属节点的中心人员，不能在这里发布通知。")
        node = here
    else:
        node = nodes[0]
    below = await descendants(ctx, node.id)
    ids = [n.id for n in below]
    bound: set[int] = set()
    if ids:
        rows = await ctx.session.execute(select(GroupBinding.node_id).where(
            GroupBinding.node_id.in_(ids), GroupBinding.status == "active", GroupBinding.channel.in_(list(ctx.channels))))
        bound = {r[0] for r in rows}
    notice = Notice(node_id=node.id, author_id=author_id, at=ctx.now(), text=text, delivered=0, failed=0, missing=[])
    ctx.session.add(notice)
    await ctx.session.flush()
    out = OutboxBatch(ctx)
    for n in below:
        if n.id not in bound:
            continue

        def compose(t, src=node.name) -> Msg:
            return Msg(t("【通知】{node}：{text}", node=src, text=text))

        out.to_group(n.id, compose, f"notice:{notice.id}:{n.id}")
    written = await out.flush()
    notice.delivered = written.get("pending", 0)
    notice.missing = sorted(n.code for n in below if n.id not in bound)
    notice.failed = len(notice.missing)
    return notice
