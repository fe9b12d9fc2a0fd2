"""Trying a one-time code from a chat: a wrong try is counted and answered, never rolled back."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from workflows import codes
from workflows.models import Account, Person
from workflows.outbox import Msg, person_accounts, to_chat

from .turn import Turn

R = TypeVar("R")


def who(turn: Turn) -> codes.Who:
    i = turn.inbound
    return codes.Who(i.channel, i.user_id or None, i.chat_id or None)


async def attempt(turn: Turn, purpose: str, use: Callable[[codes.Who], Awaitable[R]]) -> R | None:
    """`use` redeems the code; on a refusal the person is told why and None comes back.

    The router runs a command in a savepoint that a raised refusal rolls back, which would
    forget the wrong try: so the refusal is answered here and the wrong try written outside
    the inner savepoint, where it stays."""
    sender = who(turn)
    try:
        async with turn.session.begin_nested():
            return await use(sender)
    except codes.CodeRefused as err:
        await codes.refused(turn.ctx, purpose, sender, err)
        await turn.say(err.render(turn.t))
        return None


async def tell_other_accounts(turn: Turn, person: Person, name: str) -> None:
    """After a link: the person hears it on every other chat account they have, so a link they
    did not make is noticed."""
    i = turn.inbound
    where = {"telegram": "Telegram", "wecom": "企业微信", "terminal": "终端"}.get(i.channel, i.channel)
    text = turn.t("您的账号刚刚与{where}上的账号「{name}」关联。如果不是您本人操作，请立即联系社区管理员。",
                  where=where, name=name or "-")
    account: Account
    for account in await person_accounts(turn.ctx, person.id):
        if (account.channel, account.external_id) == (i.channel, i.user_id) or not account.chat_id:
            continue
        if account.channel in turn.ctx.channels:
            await to_chat(turn.ctx, account.channel, account.chat_id, Msg(text), person_id=person.id)
