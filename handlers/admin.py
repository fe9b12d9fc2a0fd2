"""Binding a work group to a node, linking a staff member's chat account, groups losing the bot."""

from __future__ import annotations

from sqlalchemy import delete, select, update

from workflows import accounts
from workflows.errors import Invalid
from workflows.models import Account, CardMessage, GroupBinding, Node, Outbox, Person
from workflows.outbox import Msg, to_group, to_person
from workflows.tree import has_role, leaders_of

from .codes import attempt, tell_other_accounts
from .registry import command
from .turn import Turn


@command("bind", "把本群绑定为网格工作群（需绑定码）", private=False, group=True, open_in_group=True)
async def bind(turn: Turn) -> None:
    i = turn.inbound
    if not i.is_group:
        raise Invalid("请在要绑定的工作群里发送 /bind 绑定码。")
    node = await attempt(turn, "bind", lambda sender: accounts.use_bind_token(turn.ctx, turn.text.strip(), sender))
    if node is None:
        return
    if turn.person is None or not await has_role(turn.ctx, turn.person.id, node,
                                                 {"leader", "standin", "centre_staff", "admin"},
                                                 {"leader", "centre_staff", "admin"}):
        raise Invalid("只有 {node} 的网格长或管理员可以绑定工作群。请先私聊我完成账号关联。", node=node.name)
    await accounts.bind_group(turn.ctx, node, i.channel, i.chat_id, i.chat_title, turn.person.id)
    await turn.say(turn.t("本群已绑定为「{node}」的工作群。新事件会发到这里。", node=node.name))


async def link_account(turn: Turn, code: str) -> None:
    person = await attempt(turn, "link", lambda sender: accounts.use_link_token(turn.ctx, code.strip(), sender))
    if person is None:
        return
    await accounts.link(turn.ctx, person, turn.inbound.channel, turn.inbound.user_id, turn.inbound.chat_id,
                        turn.inbound.user_name)
    turn.person = person
    turn.reply.menu_changed = True
    await tell_other_accounts(turn, person, turn.inbound.user_name)
    await turn.say(turn.t("账号已关联：{name}。发送 /help 查看可用的命令。", name=person.name))


@command("link", "用关联码关联工作人员账号", private=True)
async def link_cmd(turn: Turn) -> None:
    if not turn.text:
        raise Invalid("请在命令后写上关联码，例如：/link 123456")
    await link_account(turn, turn.text)


async def group_membership_changed(turn: Turn) -> None:
    """The bot was removed from (or re-added to) a group."""
    i = turn.inbound
    binding = (await turn.session.execute(
        select(GroupBinding).where(GroupBinding.channel == i.channel, GroupBinding.chat_id == i.chat_id)
    )).scalar_one_or_none()
    if binding is None:
        return
    if i.kind == "bot_added":
        return  # a re-added bot needs a fresh /bind, so the leader decides again
    if binding.status == "broken":
        return
    binding.status = "broken"
    node = await turn.session.get(Node, binding.node_id)

    async def compose(t) -> Msg:
        return Msg(t("注意：机器人已被移出「{node}」的工作群（{title}），该群不再收到事件。请网格长重新拉入机器人并用新的绑定码 /bind。",
                     node=node.name, title=binding.title or binding.chat_id))

    told = set()
    for leader in await leaders_of(turn.ctx, node.id):
        await to_person(turn.ctx, leader.id, compose)
        told.add(leader.id)
    if node.parent_id is not None:
        for leader in await leaders_of(turn.ctx, node.parent_id):
            if leader.id not in told:
                await to_person(turn.ctx, leader.id, compose)
        await to_group(turn.ctx, node.parent_id, compose)


async def group_moved(turn: Turn) -> None:
    """The platform gave the group a new id (Telegram: group → supergroup): the binding follows."""
    i = turn.inbound
    new_chat = (i.text or "").strip()
    binding = (await turn.session.execute(
        select(GroupBinding).where(GroupBinding.channel == i.channel, GroupBinding.chat_id == i.chat_id)
    )).scalar_one_or_none()
    if binding is None or not new_chat or new_chat == i.chat_id:
        return
    taken = (await turn.session.execute(
        select(GroupBinding).where(GroupBinding.channel == i.channel, GroupBinding.chat_id == new_chat)
    )).scalar_one_or_none()
    if taken is not None:
        await turn.session.delete(taken)  # a stale row for the new id must not block the move
        await turn.session.flush()
    binding.chat_id = new_chat
    await turn.session.execute(
        update(Outbox).where(Outbox.channel == i.channel, Outbox.chat_id == i.chat_id, Outbox.status == "pending")
        .values(chat_id=new_chat))
    # later versions of cards posted in the old group can no longer be edited there
    await turn.session.execute(delete(CardMessage).where(CardMessage.channel == i.channel,
                                                         CardMessage.chat_id == i.chat_id))


async def own_contact(turn: Turn) -> bool:
    """A staff member shares their own verified phone number: link them if it matches one person."""
    phone = turn.inbound.contact_phone
    if not phone or not turn.inbound.contact_is_own:
        return False
    person = await accounts.staff_by_phone(turn.ctx, phone)
    if person is None or (turn.person is not None and turn.person.id == person.id):
        return False
    acct = (await turn.session.execute(
        select(Account).where(Account.channel == turn.inbound.channel, Account.external_id == turn.inbound.user_id)
    )).scalar_one_or_none()
    if acct is not None and acct.person_id != person.id and turn.person is not None and turn.person.code:
        return False  # already a different staff member; never silently switch
    await accounts.link(turn.ctx, person, turn.inbound.channel, turn.inbound.user_id, turn.inbound.chat_id,
                        turn.inbound.user_name)
    turn.person = person
    await turn.say(turn.t("已根据手机号关联工作人员账号：{name}。", name=person.name))
    return True


async def member_joined(turn: Turn) -> None:
    """New members of a bound work group: each one who is not staff of the node is pointed out to
    the group once — the bot will not answer them there."""
    from workflows.channel_models import GroupStranger

    from . import access

    i = turn.inbound
    node = await access.group_node(turn)
    if node is None:
        return
    strangers = []
    for user_id, name in i.joined:
        account = (await turn.session.execute(
            select(Account).where(Account.channel == i.channel, Account.external_id == user_id)
        )).scalar_one_or_none()
        person = await turn.session.get(Person, account.person_id) if account is not None else None
        probe = Turn(turn.ctx, i, person, turn.t)
        if person is not None and await access.is_node_staff(probe, node):
            continue
        told = await turn.session.get(GroupStranger, (i.channel, i.chat_id, user_id))
        if told is not None:
            continue
        turn.session.add(GroupStranger(channel=i.channel, chat_id=i.chat_id, user_id=user_id, told_at=turn.ctx.now()))
        strangers.append(name or user_id)
    if strangers:
        await turn.say(turn.t("提醒：{names} 不是「{node}」登记的工作人员，机器人不会回应其命令和事件查询。"
                              "如是新同事，请管理员导入人员后用 gridbot invite 生成关联码。",
                              names="、".join(strangers), node=node.name))
