"""Writing messages to the outbox, addressed to a person, a node's work group or a chat.

Rows are written in the caller's transaction; the delivery worker sends them after commit.
Every row gets a priority here (single rows through `to_chat`, sweeps' batches through
`write_many`): the worker sends a reply to a person before case cards and notifications, and
those before bulk (reminders, reports, notices), so a morning's reminders never hold back an answer.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from sqlalchemy import select

from .context import Ctx
from .i18n import T
from .models import Account, ButtonRef, Node, Outbox, Person
from .tree import active_bindings

REPLY, CARD, BULK = 0, 1, 2


def priority_for(*, card_key: str | None = None, notice: bool = False, bulk: bool = False) -> int:
    """One rule for every writer: bulk last, cards and notifications to people next, replies first."""
    if bulk:
        return BULK
    return CARD if card_key or notice else REPLY


def outbox_values(now, channel: str, chat_id: str, msg: Msg, *, is_group: bool = False,
                  person_id: int | None = None, node_id: int | None = None, card_key: str | None = None,
                  dedupe_key: str | None = None, status: str = "pending", error: str | None = None,
                  priority: int = REPLY) -> dict:
    return {"created_at": now, "channel": channel, "chat_id": chat_id, "is_group": is_group,
            "person_id": person_id, "node_id": node_id, "payload": msg.payload(), "card_key": card_key,
            "dedupe_key": dedupe_key, "status": status, "attempts": 0, "not_before": now, "error": error,
            "priority": priority}


OUTBOX_PG = (("created_at", "timestamptz"), ("channel", "text"), ("chat_id", "text"), ("is_group", "boolean"),
             ("person_id", "bigint"), ("node_id", "bigint"), ("payload", "jsonb"), ("card_key", "text"),
             ("dedupe_key", "text"), ("status", "text"), ("attempts", "int"), ("not_before", "timestamptz"),
             ("error", "text"), ("priority", "smallint"))


async def write_many(ctx: Ctx, rows: list[dict]) -> None:
    """Insert many `outbox_values` rows in a few statements; a dedupe key already used is skipped."""
    # imported here: routines.common imports Msg from this module
    from .routines.common import chunks, dialect_insert, is_pg, pg_copy_upsert

    if not rows:
        return
    if is_pg(ctx):
        await pg_copy_upsert(ctx, "outbox", OUTBOX_PG, rows, "ON CONFLICT (dedupe_key) DO NOTHING")
        return
    ins = dialect_insert(ctx)
    for part in chunks(rows, 1000):
        await ctx.session.execute(ins(Outbox).values(part).on_conflict_do_nothing(index_elements=["dedupe_key"]))


@dataclass
class Button:
    label: str
    token: str


@dataclass
class Msg:
    text: str
    buttons: list[list[Button]] = field(default_factory=list)
    media: list[dict] = field(default_factory=list)
    # a short line for channels that cannot edit a posted card in place
    update_text: str | None = None

    def payload(self) -> dict:
        out: dict = {"text": self.text}
        if self.buttons:
            out["buttons"] = [[{"label": b.label, "token": b.token} for b in row] for row in self.buttons]
        if self.media:
            out["media"] = self.media
        if self.update_text:
            out["update_text"] = self.update_text
        return out


Compose = Callable[[T], Awaitable[Msg]]


async def button(ctx: Ctx, label: str, action: str, **args: object) -> Button:
    token = secrets.token_urlsafe(12)
    ctx.session.add(ButtonRef(token=token, action=action, args=args, created_at=ctx.now()))
    return Button(label, token)


async def _already(ctx: Ctx, dedupe_key: str | None) -> bool:
    if dedupe_key is None:
        return False
    await ctx.session.flush()
    found = await ctx.session.execute(select(Outbox.id).where(Outbox.dedupe_key == dedupe_key).limit(1))
    return found.first() is not None


async def to_chat(
    ctx: Ctx,
    channel: str,
    chat_id: str,
    msg: Msg,
    *,
    is_group: bool = False,
    person_id: int | None = None,
    node_id: int | None = None,
    card_key: str | None = None,
    dedupe_key: str | None = None,
    status: str = "pending",
    error: str | None = None,
    priority: int | None = None,
) -> Outbox | None:
    """A message to one chat; without a priority it is a reply (or a card, with a card key)."""
    if await _already(ctx, dedupe_key):
        return None
    if priority is None:
        priority = priority_for(card_key=card_key)
    row = Outbox(**outbox_values(ctx.now(), channel, chat_id, msg, is_group=is_group, person_id=person_id,
                                 node_id=node_id, card_key=card_key, dedupe_key=dedupe_key, status=status,
                                 error=error, priority=priority))
    ctx.session.add(row)
    return row


async def person_accounts(ctx: Ctx, person_id: int) -> list[Account]:
    rows = await ctx.session.execute(
        select(Account).where(Account.person_id == person_id).order_by(Account.id)
    )
    return list(rows.scalars())


async def private_account(ctx: Ctx, person: Person) -> Account | None:
    """The account private messages go to: the preferred channel if linked, else the first enabled."""
    accounts = [a for a in await person_accounts(ctx, person.id) if a.channel in ctx.channels and a.chat_id]
    if not accounts:
        return None
    for a in accounts:
        if a.channel == person.preferred_channel:
            return a
    return accounts[0]


async def to_person(ctx: Ctx, person_id: int, compose: Compose, *, dedupe_key: str | None = None,
                    card_key: str | None = None) -> bool:
    """Write a private message; a person with no reachable account gets an 'undeliverable' row.

    With a card key, a later message with the same key edits the first in place (a task card)."""
    person = await ctx.session.get(Person, person_id)
    if person is None or await _already(ctx, dedupe_key):
        return False
    t = T(person.language or ctx.language)
    msg = await compose(t)
    account = await private_account(ctx, person)
    if account is None:
        await to_chat(ctx, "none", f"person:{person.id}", msg, person_id=person.id, dedupe_key=dedupe_key,
                      status="undeliverable", error="no chat account", priority=CARD)
        return False
    await to_chat(ctx, account.channel, account.chat_id or account.external_id, msg, person_id=person.id,
                  dedupe_key=dedupe_key, card_key=card_key, priority=CARD)
    return True


async def to_group(
    ctx: Ctx,
    node_id: int,
    compose: Compose,
    *,
    card_key: str | None = None,
    dedupe_key: str | None = None,
) -> int:
    """Post to every active work group bound to the node; returns how many groups."""
    node = await ctx.session.get(Node, node_id)
    if node is None or await _already(ctx, dedupe_key):
        return 0
    msg = await compose(T(ctx.language))
    bindings = await active_bindings(ctx, node_id)
    if not bindings:
        await to_chat(ctx, "none", f"node:{node.code}", msg, is_group=True, node_id=node_id,
                      card_key=card_key, dedupe_key=dedupe_key, status="undeliverable",
                      error="no bound group", priority=CARD)
        return 0
    for i, b in enumerate(bindings):
        key = dedupe_key if i == 0 or dedupe_key is None else f"{dedupe_key}#{b.channel}"
        await to_chat(ctx, b.channel, b.chat_id, msg, is_group=True, node_id=node_id, card_key=card_key,
                      dedupe_key=key, priority=CARD)
    return len(bindings)


def text(msg: str) -> Compose:
    async def compose(_: T) -> Msg:
        return Msg(msg)

    return compose
