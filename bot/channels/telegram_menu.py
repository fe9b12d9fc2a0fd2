"""The command menu Telegram shows next to the text box, built from the dialogues' registry."""

from __future__ import annotations

import re

from sqlalchemy import literal, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from handlers import access, registry, router
from workflows.i18n import T
from workflows.models import Account, Assignment, Person, TeamMember

from .telegram_send import NAME

# Telegram: 1–32 characters, lower-case letters, digits and underscores; summaries 1–256
NAME_RE = re.compile(r"^[a-z0-9_]{1,32}$")
MENU_LANGUAGES = {None: "zh_CN", "en": "en"}  # None: every client without a more specific menu
# what people use most comes first; anything else follows in registration order
FIRST = ("report", "my", "case", "tasks", "cases", "start", "help", "language", "cancel")


def command_menus() -> dict[tuple[str, str | None], list[tuple[str, str]]]:
    """(private|group, language_code) → [(command, summary)].

    Staff-only commands stay out of the public menu (residents are most of the users); /help
    lists them for staff.
    """
    router._load_dialogues()  # importing the dialogue modules fills the registry
    order = {name: n for n, name in enumerate(FIRST)}
    commands = sorted(registry.COMMANDS.values(), key=lambda c: order.get(c.name, len(FIRST)))
    menus: dict[tuple[str, str | None], list[tuple[str, str]]] = {}
    for code, language in MENU_LANGUAGES.items():
        t = T(language)
        for where in ("private", "group"):
            menus[(where, code)] = [
                (c.name, t(c.summary)[:256])
                for c in commands
                if NAME_RE.match(c.name) and not c.staff_only and (c.private if where == "private" else c.group)
            ]
    return menus


def _menu(commands: list[registry.Command], t: T) -> list[tuple[str, str]]:
    order = {name: n for n, name in enumerate(FIRST)}
    commands = sorted(commands, key=lambda c: order.get(c.name, len(FIRST)))
    return [(c.name, t(c.summary)[:256]) for c in commands if NAME_RE.match(c.name)]


async def chat_menus(sessionmaker: async_sessionmaker[AsyncSession], default_language: str = "zh_CN",
                     chat_ids: list[str] | None = None) -> list[tuple[str, list[tuple[str, str]]]]:
    """(private chat id, its menu) for every linked staff member on Telegram (BotCommandScopeChat):
    the commands their roles allow (handlers.access), in their language."""
    router._load_dialogues()
    async with sessionmaker() as s:
        stmt = (select(Account.chat_id, Person.language, Assignment.role)
                .join(Person, Person.id == Account.person_id)
                .join(Assignment, Assignment.person_id == Person.id)
                .where(Account.channel == NAME, Account.chat_id.is_not(None)))
        if chat_ids is not None:
            stmt = stmt.where(Account.chat_id.in_(chat_ids))
        rows = (await s.execute(stmt)).all()
        teams = (select(Account.chat_id, Person.language, literal("team_member"))
                 .join(Person, Person.id == Account.person_id)
                 .join(TeamMember, TeamMember.person_id == Person.id)
                 .where(Account.channel == NAME, Account.chat_id.is_not(None)))
        if chat_ids is not None:
            teams = teams.where(Account.chat_id.in_(chat_ids))
        rows += (await s.execute(teams)).all()
    roles: dict[str, set[str]] = {}
    language: dict[str, str] = {}
    for chat_id, lang, role in rows:
        roles.setdefault(chat_id, set()).add(str(role))
        language[chat_id] = lang or default_language
    return [(chat_id, _menu(access.commands_for(held, "private"), T(language[chat_id])))
            for chat_id, held in sorted(roles.items())]
