"""The entry point every channel calls: one inbound event, one transaction."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from sqlalchemy import bindparam, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from workflows import media, wechat_people
from workflows.clock import Clock, SystemClock
from workflows.context import Ctx
from workflows.i18n import T
from workflows.models import Account, InboundSeen, Person
from workflows.outbox import Msg, to_chat
from workflows.routines.common import dialect_insert

from . import router
from .events import Inbound, Reply
from .turn import Turn

log = logging.getLogger(__name__)

LOCK_RETRY_SECONDS = 30.0  # a database lock (SQLite's one writer) is waited out, not apologised for


def _locked(e: Exception) -> bool:
    """SQLite's 'database is locked' after its busy timeout, PostgreSQL's deadlock or serialization
    failure: the transaction did nothing and may simply run again."""
    if not isinstance(e, OperationalError):
        return False
    code = getattr(e.orig, "sqlstate", None) or getattr(e.orig, "pgcode", None)
    return "database is locked" in str(e) or code in ("40001", "40P01")


class Office:
    """Runs the dialogues for every channel against one database."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        clock: Clock | None = None,
        channels: frozenset[str] = frozenset({"terminal"}),
        language: str = "zh_CN",
        timezone: str = "Asia/Shanghai",
        on_commit: Callable[[], None] | None = None,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.clock = clock or SystemClock()
        self.channels = channels
        self.language = language
        self.timezone = timezone
        self.on_commit = on_commit

    def ctx(self, session: AsyncSession, inbound: Inbound | None = None) -> Ctx:
        return Ctx(session=session, clock=self.clock, channels=self.channels, language=self.language,
                   timezone=self.timezone, via_channel=inbound.channel if inbound else None,
                   via_chat=inbound.chat_id if inbound else None)

    async def handle(self, inbound: Inbound) -> Reply:
        try:
            reply = await self._handle_retrying(inbound)
            if reply.duplicate:
                return reply
        except Exception:
            log.exception("handling %s event in %s:%s failed", inbound.kind, inbound.channel, inbound.chat_id)
            reply = await self._apologise(inbound)
        if self.on_commit:
            self.on_commit()
        return reply

    async def _handle_retrying(self, inbound: Inbound) -> Reply:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + LOCK_RETRY_SECONDS
        pause = 0.05
        while True:
            try:
                return await self._handle_once(inbound)
            except OperationalError as e:
                if not _locked(e) or loop.time() > deadline:
                    raise
                log.warning("database busy handling %s event in %s:%s, trying again", inbound.kind,
                            inbound.channel, inbound.chat_id)
                await asyncio.sleep(pause)
                pause = min(pause * 2, 1.0)

    async def _handle_once(self, inbound: Inbound) -> Reply:
        async with self.sessionmaker() as session, session.begin():
            ctx = self.ctx(session, inbound)
            if await _seen_before(ctx, inbound):
                return Reply(duplicate=True, handled=False)
            person = await identify(ctx, inbound)
            t = T(person.language if person and person.language else (inbound.language or self.language))
            turn = Turn(ctx, inbound, person, t)
            if await _take_media(turn):
                await router.route(turn)
            return turn.reply

    async def _apologise(self, inbound: Inbound) -> Reply:
        """Nothing of the failed event was kept; say so plainly and remember the event id."""
        t = T(inbound.language or self.language)
        text = t("抱歉，系统出了点问题，您的操作没有生效，请稍后再试。")
        try:
            async with self.sessionmaker() as session, session.begin():
                ctx = self.ctx(session, inbound)
                await _seen_before(ctx, inbound)
                if not inbound.is_group or inbound.kind != "button":
                    await to_chat(ctx, inbound.channel, inbound.chat_id, Msg(text), is_group=inbound.is_group)
        except Exception:
            log.exception("could not record the apology")
        return Reply(alert=text)


async def _take_media(turn: Turn) -> bool:
    """Records the event's attachments for the media store (fetched after the commit) and
    refuses those over the limit for their type with a clear answer; False when nothing is left
    for the dialogue."""
    inbound = turn.inbound
    if not inbound.media or inbound.kind != "message":
        return True
    refused = await media.arrived(turn.ctx, inbound.media, chat_id=inbound.chat_id,
                                  sender_id=turn.person.id if turn.person else None)
    for m in refused:
        await turn.say(media.too_big_text(turn.t, m.kind, m.size))
    if refused:
        inbound.media = [m for m in inbound.media if m not in refused]
    return bool(inbound.media or inbound.text or inbound.location)


async def _seen_before(ctx: Ctx, inbound: Inbound) -> bool:
    if not inbound.event_id:
        return False
    # one statement, no savepoint: a repeat inserts nothing (a concurrent twin waits on the key)
    added = await ctx.session.execute(
        dialect_insert(ctx)(InboundSeen).values(channel=inbound.channel, event_id=inbound.event_id, at=ctx.now())
        .on_conflict_do_nothing(index_elements=["channel", "event_id"]))
    return added.rowcount == 0


# built once: every event runs it (building the expression costs about as much as running it)
_ACCOUNT = select(Account).where(Account.channel == bindparam("channel"),
                                 Account.external_id == bindparam("external_id"))


async def identify(ctx: Ctx, inbound: Inbound) -> Person | None:
    """The person behind the sender; a first private message makes a resident of them."""
    account = (await ctx.session.execute(
        _ACCOUNT, {"channel": inbound.channel, "external_id": inbound.user_id})).scalar_one_or_none()
    if account is not None:
        # An event never moves the account's private chat: only the linking commands set it
        # (workflows.accounts.link). Pressing a button on someone else's card — the terminal
        # shows every chat on one screen — once re-pointed a person's reminders to another chat.
        if account.undeliverable and not inbound.is_group and account.chat_id == inbound.chat_id:
            account.undeliverable = None  # they wrote to us, so we can write to them again
        await wechat_people.remember_unionid(ctx, account, inbound.unionid)
        return await ctx.session.get(Person, account.person_id)
    if inbound.is_group or inbound.kind in ("bot_removed", "bot_added"):
        return None
    # a resident known through another WeChat door of the office (same unionid) stays one person
    person = await wechat_people.person_by_unionid(ctx, inbound.unionid) if inbound.unionid else None
    if person is None:
        person = Person(name=(inbound.user_name or "居民")[:100], created_at=ctx.now(),
                        language=None)
        ctx.session.add(person)
        await ctx.session.flush()
    ctx.session.add(Account(channel=inbound.channel, external_id=inbound.user_id, chat_id=inbound.chat_id,
                            person_id=person.id, display_name=inbound.user_name[:200] or None,
                            created_at=ctx.now(), unionid=inbound.unionid))
    await ctx.session.flush()
    return person
