"""Routes an inbound event: buttons, commands, an open conversation, or the main menu."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from workflows.cases import NUMBER_RE
from workflows.errors import DomainError
from workflows.models import ButtonRef, Conversation, GroupBinding, Outbox

from . import access, registry
from .events import MAX_INBOUND_TEXT
from .turn import Turn

BUTTON_MAX_AGE = timedelta(days=60)  # workflows.routines.housekeeping prunes them after that
HINT_EVERY = timedelta(hours=6)


def _load_dialogues() -> None:
    # importing registers their commands, actions and flows
    from . import (  # noqa: F401
        admin,
        care,
        common,
        console,
        leader,
        leave,
        ledger,
        link,
        mine,
        oversight,
        patrol,
        points,
        rating,
        report,
        staff,
        stats,
        worker,
    )


def parse_command(text: str) -> tuple[str, str] | None:
    if not text.startswith("/"):
        return None
    head, _, rest = text[1:].partition(" ")
    name = head.split("@", 1)[0].lower()  # Telegram groups send /cmd@botname
    return (name, rest.strip()) if name else None


async def route(turn: Turn) -> None:
    _load_dialogues()
    try:
        # a savepoint: a refused action leaves nothing behind, the answer is still written
        async with turn.session.begin_nested():
            await _route(turn)
    except DomainError as err:
        text = err.render(turn.t)
        if turn.inbound.kind == "button" and not turn.typed:
            turn.alert(text)  # in a group: a pop-up for the one who pressed, not a line for everyone
            if not turn.inbound.is_group:
                # in a private chat it is written into the chat, and the channel shows no pop-up too
                await turn.say(text)
                turn.reply.alert_in_chat = True
        else:
            await turn.say(text)
        return
    if turn.typed and turn.reply.alert and not turn.reply.alert_in_chat:
        # a typed label has no pop-up to show an action's short answer in: write it into the chat
        await turn.say(turn.reply.alert)
        turn.reply.alert_in_chat = True


async def _route(turn: Turn) -> None:
    i = turn.inbound
    if i.kind in ("bot_removed", "bot_added"):
        from .admin import group_membership_changed

        await group_membership_changed(turn)
        return
    if i.kind == "member_joined":
        if i.is_group and await _bound(turn):
            from .admin import member_joined

            await member_joined(turn)
        return
    if i.kind == "group_moved":
        from .admin import group_moved

        await group_moved(turn)
        return
    if i.is_group and not await _bound(turn):
        await _unbound_group(turn)
        return
    if i.kind == "button":
        await _button(turn)
        return
    if i.kind == "edited":
        if not i.is_group:
            await turn.say(turn.t("修改已发送的消息不会改变已提交的内容；如需更正，请重新发送。"))
        return
    if i.kind == "forwarded":
        if not i.is_group:
            await turn.say(turn.t("转发的消息不能直接作为上报内容。请用自己的话描述问题，或发送 /report 开始上报。"))
        return
    if i.kind == "unsupported":
        if not i.is_group:
            await turn.say(turn.t("暂不支持这种消息。请发送文字、图片、语音、视频或位置。"))
        return
    if i.text and len(i.text) > MAX_INBOUND_TEXT:
        await turn.say(turn.t("消息太长了（{n} 字），请控制在 {limit} 字以内。", n=len(i.text), limit=2000))
        return
    cmd = parse_command(turn.text)
    if cmd is not None:
        await _command(turn, *cmd)
        return
    conv = await turn.conversation()
    if not i.is_group and conv is not None and turn.text.casefold() in CANCEL_WORDS:
        from .common import cancel

        await cancel(turn)  # 取消 typed works at every step, whatever buttons the step shows
        return
    if (token := await _typed_label(turn)) and (not i.is_group or await access.answers_in_group(turn)):
        i.kind, i.button, i.text = "button", token, None
        turn.typed = True
        await _button(turn)
        return
    if conv is None and (number := _bare_number(turn.text)) and (not i.is_group or await access.answers_in_group(turn)):
        from .mine import show_number

        await show_number(turn, number)
        return
    if conv is not None and conv.flow in registry.FLOWS:
        await registry.FLOWS[conv.flow](turn, dict(conv.data))
        return
    if i.is_group:
        return  # people talk in their work group; only commands and buttons are for us
    from .common import fallback

    await fallback(turn)


CANCEL_WORDS = {"取消", "cancel", "退出"}
LABEL_MAX = 40


async def _typed_label(turn: Turn) -> str | None:
    """Text that is exactly a button label of the newest message with buttons in this chat
    presses that button: typing 「跳过」 or 「提交」 works where tapping does (in a work group, the
    newest card's 「立案」 typed by the node's staff; the action checks who may, as for a tap)."""
    i, text = turn.inbound, turn.text
    if i.kind != "message" or not text or len(text) > LABEL_MAX or i.media or i.location or i.contact_phone:
        return None
    rows = await turn.session.execute(
        select(Outbox.payload).where(Outbox.channel == i.channel, Outbox.chat_id == i.chat_id)
        .order_by(Outbox.id.desc()).limit(5))
    wanted = text.casefold()
    for payload in rows.scalars():
        buttons = [b for row in payload.get("buttons") or [] for b in row]
        if not buttons:
            continue
        found = [b["token"] for b in buttons if str(b.get("label", "")).strip().casefold() == wanted]
        return found[0] if len(found) == 1 else None
    return None


def _bare_number(text: str) -> str | None:
    """A message that is only a case number asks for that case's card."""
    text = (text or "").strip()
    return text.upper() if NUMBER_RE.fullmatch(text) else None


async def _command(turn: Turn, name: str, args: str) -> None:
    i = turn.inbound
    cmd = registry.COMMANDS.get(name)
    where_ok = cmd is not None and (cmd.group if i.is_group else cmd.private)
    if cmd is None or not where_ok:
        if i.is_group and cmd is None:
            return  # other bots' commands in a shared group are none of our business
        await turn.say(turn.t("没有这个命令。发送 /help 查看可用的命令。") if cmd is None else
                       turn.t("这个命令只能在{where}中使用。", where=turn.t("私聊") if cmd.private else turn.t("工作群")))
        return
    if i.is_group and not cmd.open_in_group and not await access.answers_in_group(turn):
        return  # in a work group only the node's own staff get answers (the group was told of strangers)
    if not await access.allowed(turn, cmd):
        await turn.say(turn.t("您没有使用 /{name} 的权限。发送 /help 查看您可用的命令。", name=name))
        return
    turn.inbound.text = args
    await cmd.fn(turn)


async def _button(turn: Turn) -> None:
    token = turn.inbound.button or ""
    ref = await turn.session.get(ButtonRef, token) if 0 < len(token) <= 32 else None
    if ref is None or ref.action not in registry.ACTIONS or turn.ctx.now() - ref.created_at > BUTTON_MAX_AGE:
        turn.alert(turn.t("这个按钮已失效，请使用最新的消息。"))
        return
    await registry.ACTIONS[ref.action](turn, dict(ref.args))


async def _bound(turn: Turn) -> bool:
    i = turn.inbound
    row = await turn.session.execute(
        select(GroupBinding.id).where(GroupBinding.channel == i.channel, GroupBinding.chat_id == i.chat_id,
                                      GroupBinding.status == "active")
    )
    return row.first() is not None


async def _unbound_group(turn: Turn) -> None:
    i = turn.inbound
    cmd = parse_command(turn.text)
    if cmd is not None and cmd[0] == "bind":
        from .admin import bind

        turn.inbound.text = cmd[1]
        await bind(turn)
        return
    if i.kind == "button":
        turn.alert(turn.t("本群尚未绑定网格，按钮无效。"))
        return
    # a short hint, at most every few hours, so an unbound group is not flooded
    conv = (await turn.session.execute(
        select(Conversation).where(Conversation.channel == i.channel, Conversation.chat_id == i.chat_id,
                                   Conversation.user_id == "*group*")
    )).scalar_one_or_none()
    now = turn.ctx.now()
    if conv is not None and now - conv.updated_at < HINT_EVERY:
        return
    if conv is None:
        turn.session.add(Conversation(channel=i.channel, chat_id=i.chat_id, user_id="*group*", flow="hint",
                                      step="hinted", data={}, updated_at=now))
    else:
        conv.updated_at = now
    await turn.say(turn.t("本群还没有绑定网格。请网格长在本群发送 /bind 绑定码（绑定码由管理员用 gridbot bind-token 生成）。"))
