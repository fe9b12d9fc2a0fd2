"""The command menu Telegram shows next to the text box, built from the dialogues' registry."""

from __future__ import annotations

import re

from handlers import registry, router
from workflows.i18n import T

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
