"""Help, start, cancel, language and the main menu."""

from __future__ import annotations

from workflows.cases import case_by_number, find_number
from workflows.i18n import LANGUAGES, T
from workflows.tree import roles_of

from .registry import action, command
from .turn import Turn

RESIDENT_FIRST = ["report", "my", "case", "cancel", "help", "language", "start"]


async def is_staff(turn: Turn) -> bool:
    return turn.person is not None and bool(await roles_of(turn.ctx, turn.person.id))


async def main_menu(turn: Turn, text: str | None = None) -> None:
    rows = [[await turn.button("上报问题", "menu.report"), await turn.button("我的事件", "menu.mine")]]
    if await is_staff(turn):
        rows.append([await turn.button("我的待办", "menu.tasks")])
    rows.append([await turn.button("帮助", "menu.help"), await turn.button("语言 Language", "menu.language")])
    await turn.say(text or turn.t("您好！我是网格服务助手。请选择要办理的事项："), buttons=rows)


async def help_text(turn: Turn) -> str:
    """Exactly the commands this person may use in this chat (handlers.access decides)."""
    from . import access

    t = turn.t
    where = "group" if turn.inbound.is_group else "private"
    mine = access.commands_for(await access.roles(turn), where)
    lines = [t("可用命令：")]
    # residents' commands first, then everyone's, then the staff's, each in a stable order
    ordered = sorted(mine, key=lambda c: (c.roles is not None, c.name not in RESIDENT_FIRST,
                                          RESIDENT_FIRST.index(c.name) if c.name in RESIDENT_FIRST else 0, c.name))
    for cmd in ordered:
        lines.append(f"/{cmd.name} — {t(cmd.summary)}")
    if where == "private":
        lines.append(t("也可以直接发送事件编号查询进度。任何时候发送 /cancel 可取消当前操作。"))
    return "\n".join(lines)


@command("start", "开始使用", private=True)
async def start(turn: Turn) -> None:
    if turn.text:  # /start CODE: a staff member linking this chat account
        from .admin import link_account

        await link_account(turn, turn.text)
        return
    await turn.finish()
    await main_menu(turn)


@command("help", "查看帮助", private=True, group=True)
async def help_cmd(turn: Turn) -> None:
    await turn.say(await help_text(turn))


@action("menu.help")
async def help_button(turn: Turn, args: dict) -> None:
    await turn.say(await help_text(turn))


@command("cancel", "取消当前操作", private=True, group=True)
async def cancel(turn: Turn) -> None:
    conv = await turn.conversation()
    await turn.finish()
    if turn.inbound.is_group:
        if conv is not None:
            await turn.say(turn.t("已取消。"))
        return
    await main_menu(turn, turn.t("已取消当前操作。") if conv else turn.t("当前没有进行中的操作。"))


@action("flow.cancel")
async def cancel_button(turn: Turn, args: dict) -> None:
    await cancel(turn)


@command("language", "切换语言", private=True)
async def language(turn: Turn) -> None:
    rows = [[await turn.button(name, "menu.set_language", language=code)] for code, name in LANGUAGES.items()]
    await turn.say(turn.t("请选择语言："), buttons=rows)


@action("menu.language")
async def language_button(turn: Turn, args: dict) -> None:
    await language(turn)


@action("menu.set_language")
async def set_language(turn: Turn, args: dict) -> None:
    if turn.person is None or args.get("language") not in LANGUAGES:
        return
    turn.person.language = args["language"]
    turn.t = T(args["language"])
    await turn.say(turn.t("语言已切换为简体中文。"))


async def fallback(turn: Turn) -> None:
    """A private message outside any dialogue: a case number shows its status, else the menu."""
    if turn.inbound.contact_phone:
        from .admin import own_contact

        if await own_contact(turn):
            return
    number = find_number(turn.text)
    if number:
        from .mine import show_case

        case = await case_by_number(turn.ctx, number)
        await show_case(turn, case)
        return
    if turn.inbound.media or turn.inbound.location:
        await main_menu(turn, turn.t("收到。如需上报问题，请点击「上报问题」，我会一步步引导您。"))
        return
    await main_menu(turn)
