"""The delivery worker: sends outbox rows once, in order per chat, within each platform's limits."""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from workflows.accounts import unreachable
from workflows.clock import Clock, SystemClock
from workflows.context import Ctx
from workflows.models import CardMessage, Outbox

from .channels.base import (
    Adapter,
    MessageGone,
    OutgoingMessage,
    PermanentError,
    RetryLater,
    Sent,
    TransientError,
)
from .ratelimit import Limiter

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 8
LEASE = timedelta(minutes=2)


def backoff(attempt: int) -> float:
    return min(300.0, 2.0 ** attempt)


class Delivery:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        adapters: dict[str, Adapter],
        *,
        clock: Clock | None = None,
        poll_seconds: float = 1.0,
        batch: int = 200,
        language: str = "zh_CN",
        timezone: str = "Asia/Shanghai",
    ) -> None:
        self.sessionmaker = sessionmaker
        self.adapters = adapters
        self.clock = clock or SystemClock()
        self.poll_seconds = poll_seconds
        self.batch = batch
        self.language = language
        self.timezone = timezone
        self.limiters = {name: Limiter(a.windows) for name, a in adapters.items()}
        self._wake = asyncio.Event()
        self._stopping = False

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        while not self._stopping:
            try:
                sent = await self.deliver_due()
            except Exception:
                log.exception("delivery round failed")
                sent = 0
            if sent == 0:
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), self.poll_seconds)
                except TimeoutError:
                    pass

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    async def drain(self, rounds: int = 50) -> None:
        """Deliver until nothing is due (the terminal and tests use this)."""
        for _ in range(rounds):
            if await self.deliver_due() == 0:
                return

    # ------------------------------------------------------------ one round

    async def deliver_due(self) -> int:
        rows = await self._claim()
        if not rows:
            return 0
        by_chat: dict[tuple[str, str], list[Outbox]] = defaultdict(list)
        for row in rows:
            by_chat[(row.channel, row.chat_id)].append(row)
        await asyncio.gather(*(self._deliver_chat(chat_rows) for chat_rows in by_chat.values()))
        return len(rows)

    async def _claim(self) -> list[Outbox]:
        now = self.clock.now()
        async with self.sessionmaker() as session, session.begin():
            # rows left 'sending' by a crashed process go out again (at least once beats never)
            await session.execute(
                update(Outbox)
                .where(Outbox.status == "sending", Outbox.claimed_at < now - LEASE)
                .values(status="pending")
            )
            stmt = (
                select(Outbox)
                .where(Outbox.status == "pending", Outbox.channel.in_(list(self.adapters)),
                       Outbox.not_before <= now)
                .order_by(Outbox.id)
                .limit(self.batch)
            )
            if session.bind.dialect.name == "postgresql":
                stmt = stmt.with_for_update(skip_locked=True)
            rows = list((await session.execute(stmt)).scalars())
            for row in rows:
                row.status = "sending"
                row.claimed_at = now
            return rows

    async def _deliver_chat(self, rows: list[Outbox]) -> None:
        for n, row in enumerate(rows):
            held = await self._deliver_one(row)
            if held is not None:
                # keep this chat's order: everything after waits as long as this one
                await self._hold(rows[n + 1:], held)
                return

    async def _hold(self, rows: list[Outbox], until) -> None:
        if not rows:
            return
        async with self.sessionmaker() as session, session.begin():
            await session.execute(
                update(Outbox).where(Outbox.id.in_([r.id for r in rows]))
                .values(status="pending", not_before=until)
            )

    async def _deliver_one(self, row: Outbox):
        """Send one row; returns a time the chat must wait until, or None to carry on."""
        adapter = self.adapters[row.channel]
        if row.card_key and await self._superseded(row):
            await self._finish(row, "superseded")
            return None
        msg = OutgoingMessage(id=row.id, channel=row.channel, chat_id=row.chat_id, is_group=row.is_group,
                              payload=row.payload, card_key=row.card_key)
        posted = await self._card_message(row) if row.card_key else None
        await self.limiters[row.channel].acquire(row.chat_id, row.is_group)
        try:
            if posted is not None and adapter.can_edit:
                msg.edit_message_id = posted
                try:
                    await adapter.edit(msg, posted)
                    sent = Sent(posted)
                except MessageGone:
                    sent = await adapter.send(msg)
            elif posted is not None:
                short = {"text": row.payload.get("update_text") or row.payload.get("text", "")}
                if "buttons" in row.payload:
                    short["buttons"] = row.payload["buttons"]
                msg.payload = short
                sent = await adapter.send(msg)
            else:
                sent = await adapter.send(msg)
        except RetryLater as e:
            until = self.clock.now() + timedelta(seconds=max(e.seconds, 0.5))
            await self._retry(row, until, str(e), count=False)
            return until
        except TransientError as e:
            if row.attempts + 1 >= MAX_ATTEMPTS:
                await self._failed(row, f"gave up after {MAX_ATTEMPTS} attempts: {e}")
                return None
            until = self.clock.now() + timedelta(seconds=backoff(row.attempts))
            await self._retry(row, until, str(e), count=True)
            return until
        except PermanentError as e:
            await self._failed(row, str(e))
            return None
        except Exception as e:  # a bug in an adapter must not stop the others
            log.exception("sending outbox row %s failed", row.id)
            await self._failed(row, f"internal error: {e!r}")
            return None
        await self._sent(row, sent)
        return None

    async def _superseded(self, row: Outbox) -> bool:
        async with self.sessionmaker() as session:
            newer = await session.execute(
                select(Outbox.id).where(Outbox.card_key == row.card_key, Outbox.channel == row.channel,
                                        Outbox.chat_id == row.chat_id, Outbox.id > row.id,
                                        Outbox.status.in_(["pending", "sending"])).limit(1)
            )
            return newer.first() is not None

    async def _card_message(self, row: Outbox) -> str | None:
        async with self.sessionmaker() as session:
            card = await session.get(CardMessage, (row.card_key, row.channel, row.chat_id))
            return card.message_id if card else None

    async def _sent(self, row: Outbox, sent: Sent) -> None:
        async with self.sessionmaker() as session, session.begin():
            await session.execute(
                update(Outbox).where(Outbox.id == row.id)
                .values(status="sent", sent_at=self.clock.now(), message_id=sent.message_id,
                        attempts=row.attempts + 1, error=None)
            )
            if row.card_key and sent.message_id:
                card = await session.get(CardMessage, (row.card_key, row.channel, row.chat_id))
                if card is None:
                    session.add(CardMessage(card_key=row.card_key, channel=row.channel, chat_id=row.chat_id,
                                            message_id=sent.message_id))
                else:
                    card.message_id = sent.message_id

    async def _finish(self, row: Outbox, status: str) -> None:
        async with self.sessionmaker() as session, session.begin():
            await session.execute(update(Outbox).where(Outbox.id == row.id).values(status=status))

    async def _retry(self, row: Outbox, until, error: str, *, count: bool) -> None:
        async with self.sessionmaker() as session, session.begin():
            await session.execute(
                update(Outbox).where(Outbox.id == row.id)
                .values(status="pending", not_before=until, error=error,
                        attempts=row.attempts + (1 if count else 0))
            )

    async def _failed(self, row: Outbox, error: str) -> None:
        log.warning("outbox row %s to %s:%s failed: %s", row.id, row.channel, row.chat_id, error)
        async with self.sessionmaker() as session, session.begin():
            await session.execute(
                update(Outbox).where(Outbox.id == row.id)
                .values(status="failed", error=error[:1000], attempts=row.attempts + 1)
            )
            if row.person_id is not None and not row.is_group:
                await self._mark_undeliverable(session, row, error)

    async def _mark_undeliverable(self, session: AsyncSession, row: Outbox, error: str) -> None:
        ctx = Ctx(session=session, clock=self.clock, channels=frozenset(self.adapters),
                  language=self.language, timezone=self.timezone)
        await unreachable(ctx, row.person_id, row.channel, row.chat_id, error)
