"""Single-use codes, group bindings and linking chat accounts to people."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from . import codes
from .context import Ctx
from .errors import Invalid
from .models import Account, Assignment, GroupBinding, Node, Person
from .outbox import Msg, to_group
from .tree import node_by_code

TOKEN_LIFETIME = timedelta(hours=24)


async def new_token(ctx: Ctx, purpose: str, *, node_id: int | None = None, person_id: int | None = None,
                    lifetime: timedelta = TOKEN_LIFETIME) -> str:
    # no look-alike characters: easy to read out over the phone (workflows/codes.py)
    return await codes.issue(ctx, purpose, lifetime, node_id=node_id, person_id=person_id)


async def bind_token(ctx: Ctx, node_code: str) -> str:
    node = await node_by_code(ctx, node_code)
    return await new_token(ctx, "bind", node_id=node.id)


async def link_token(ctx: Ctx, person_code: str) -> str:
    person = (await ctx.session.execute(select(Person).where(Person.code == person_code))).scalar_one_or_none()
    if person is None:
        raise Invalid("找不到编码为 {code} 的人员。", code=person_code)
    return await new_token(ctx, "link", person_id=person.id)


async def use_bind_token(ctx: Ctx, token: str, who: codes.Who | None = None) -> Node:
    """Raises codes.CodeRefused; see codes.redeem for counting the wrong try."""
    row = await codes.redeem(ctx, "bind", token, who or codes.Who(ctx.via_channel, None, ctx.via_chat))
    return await ctx.session.get(Node, row.node_id)


async def use_link_token(ctx: Ctx, token: str, who: codes.Who | None = None) -> Person:
    row = await codes.redeem(ctx, "link", token, who or codes.Who(ctx.via_channel, None, ctx.via_chat))
    return await ctx.session.get(Person, row.person_id)


async def bind_group(ctx: Ctx, node: Node, channel: str, chat_id: str, title: str | None,
                     by_person_id: int | None) -> GroupBinding:
    """The chat becomes the node's work group; an older group of the node on that channel is retired."""
    rows = await ctx.session.execute(
        select(GroupBinding).where(
            ((GroupBinding.channel == channel) & (GroupBinding.chat_id == chat_id))
            | ((GroupBinding.node_id == node.id) & (GroupBinding.channel == channel))
        )
    )
    existing = None
    for b in rows.scalars():
        if b.chat_id == chat_id:
            existing = b
        else:
            b.status = "replaced"
    if existing is None:
        existing = GroupBinding(node_id=node.id, channel=channel, chat_id=chat_id, bound_at=ctx.now())
        ctx.session.add(existing)
    existing.node_id, existing.title, existing.status = node.id, title, "active"
    existing.bound_at, existing.bound_by_id = ctx.now(), by_person_id
    await ctx.session.flush()
    return existing


async def link(ctx: Ctx, person: Person, channel: str, external_id: str, chat_id: str | None,
               display_name: str | None) -> Account:
    acct = (await ctx.session.execute(
        select(Account).where(Account.channel == channel, Account.external_id == external_id)
    )).scalar_one_or_none()
    if acct is None:
        acct = Account(channel=channel, external_id=external_id, created_at=ctx.now(), person_id=person.id)
        ctx.session.add(acct)
    acct.person_id = person.id
    acct.chat_id = chat_id or acct.chat_id
    acct.display_name = display_name or acct.display_name
    await ctx.session.flush()
    return acct


def _digits(phone: str) -> str:
    return "".join(ch for ch in phone if ch.isdigit())[-11:]


async def staff_by_phone(ctx: Ctx, phone: str) -> Person | None:
    wanted = _digits(phone)
    if len(wanted) < 7:
        return None
    rows = await ctx.session.execute(select(Person).where(Person.code.is_not(None), Person.phone.is_not(None)))
    found = [p for p in rows.scalars() if _digits(p.phone) == wanted]
    return found[0] if len(found) == 1 else None


async def unreachable(ctx: Ctx, person_id: int, channel: str, chat_id: str, error: str) -> None:
    """A private message could not be delivered for good: remember it on the account and, the
    first time, tell the work groups of the person's nodes so someone phones them."""
    account = (await ctx.session.execute(
        select(Account).where(Account.channel == channel, Account.chat_id == chat_id,
                              Account.person_id == person_id)
    )).scalar_one_or_none()
    if account is None or account.undeliverable:
        return
    account.undeliverable = error[:200]
    person = await ctx.session.get(Person, person_id)
    nodes = (await ctx.session.execute(
        select(Assignment.node_id).where(Assignment.person_id == person_id).distinct()
    )).scalars().all()

    async def compose(t) -> Msg:
        return Msg(t("无法给 {name} 发送消息（{channel}：{error}），请电话联系本人，并请其重新私聊机器人。",
                     name=person.name, channel=channel, error=error[:80]))

    for node_id in nodes:
        await to_group(ctx, node_id, compose)
