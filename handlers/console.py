"""/console: a staff member asks for a one-time sign-in link to the web console."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from workflows import console_access

from .codes import who
from .registry import command
from .turn import Turn


@dataclass
class LinkSettings:
    """Set by the web console when it serves (bot.console.Console.routes); url None: no console."""

    url: str | None = None  # CONSOLE_URL, without the trailing slash
    lifetime: timedelta = timedelta(minutes=10)


LINK = LinkSettings()


@command("console", "打开网页控制台（发送一次性登录链接）", private=True, staff_only=True)
async def console(turn: Turn) -> None:
    if LINK.url is None:
        await turn.say(turn.t("网页控制台没有开启（CONSOLE_ENABLED），请联系系统管理员。"))
        return
    token = await console_access.issue_link_token(turn.ctx, turn.person.id, LINK.lifetime, who(turn))
    minutes = max(1, int(LINK.lifetime.total_seconds() // 60))
    await turn.say(turn.t("网页控制台登录链接（{minutes} 分钟内有效，只能使用一次，请勿转发）：\n{url}",
                          minutes=minutes, url=f"{LINK.url}/console/signin/{token}"))
