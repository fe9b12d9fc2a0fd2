"""The delivery worker: sends outbox rows once, in order per chat, within each platform's limits.

Each round claims, per chat, only the chat's next row (by priority lane, then id), and only for
chats whose limits allow a send within the next `horizon` seconds, up to the slots the overall
window has in that time. Every claimed row is one task: it waits for its reserved slot, sends,
and commits its own status, so one busy group never holds back a private reply, and the window
between "sent" and "marked sent" is one message per chat. Replies to people go before cards,
cards before bulk (see workflows/outbox.py).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta

from sqlalchemy import and_, case, exists, func, or_, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import aliased

from workflows.accounts import unreachable
from workflows.clock import Clock, SystemClock
from workflows.context import Ctx
from workflows.models import CardMessage, Outbox
from workflows.outbox import BULK

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
from .senders import HEARTBEAT, Senders, Share, shard

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 8
LEASE = timedelta(minutes=2)
HORIZON = 0.5  # seconds ahead a round plans sends (a reply committed now waits at most this long)
MAX_IN_FLIGHT = 200  # rows claimed and not yet finished, over all channels
NO_LIMIT_BATCH = 50  # sends per round on a channel without an overall window (terminal, tests)
BUSY_GAP = 0.1  # a busy worker runs rounds at most this often (a window query each)
MARK_GAP = 0.15  # a sent mark not carried by a round's transaction by then is written on its own
STATUS_RETRY_SECONDS = 60.0  # a status write after a send is retried this long (well inside LEASE)
# on stop, sends still unanswered after this long are given up (the platform unreachable: aiogram
# waits 60 s for an answer) and their rows go back to the queue, counted as maybe sent
STOP_GRACE = 5.0


@functools.cache  # built once: an aliased ORM expression costs milliseconds to build, every round
def _before_it():
    """Another row of the same chat is in flight or comes before this one (bulk after the rest,
    then by id): this row is not its chat's head."""
    other = aliased(Outbox)
    lane_r = case((Outbox.priority >= BULK, 1), else_=0)
    lane_o = case((other.priority >= BULK, 1), else_=0)
    return exists().where(
        other.channel == Outbox.channel, other.chat_id == Outbox.chat_id,
        other.status.in_(("pending", "sending")), other.id != Outbox.id,
        or_(other.status == "sending", lane_o < lane_r, and_(lane_o == lane_r, other.id < Outbox.id)))


def backoff(attempt: int, cap: float = 300.0) -> float:
    return min(cap, 2.0 ** min(attempt, 60))


def attempts_for(retry_for: timedelta, cap: float) -> int:
    """The attempts that span `retry_for` of backoff: the last one is made at least that long after
    the first failure, however long the row waited in the queue before it."""
    n, waited = 1, 0.0
    while waited < retry_for.total_seconds():
        waited += backoff(n - 1, cap)
        n += 1
    return n


def retry_policy(adapter: Adapter) -> tuple[int, float, str]:
    """(attempts, backoff cap in seconds, how to say it) for a channel's transient errors. Chat
    channels give up after MAX_ATTEMPTS (~4 min); an adapter may ask to keep trying for a time
    instead (`retry_for`, `backoff_cap`: the webhooks, whose receivers can be down for hours)."""
    retry_for = getattr(adapter, "retry_for", None)
    if retry_for is None:
        return MAX_ATTEMPTS, 300.0, f"{MAX_ATTEMPTS} attempts"
    cap = float(getattr(adapter, "backoff_cap", 300.0))
    n = attempts_for(retry_for, cap)
    return n, cap, f"retrying for {retry_for.total_seconds() / 3600:g} h ({n} attempts)"


class Stopping(Exception):
    """Delivery is stopping: a row not yet sent goes back to the queue."""


class Delivery:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        adapters: dict[str, Adapter],
        *,
        clock: Clock | None = None,
        poll_seconds: float = 1.0,
        batch: int = MAX_IN_FLIGHT,
        language: str = "zh_CN",
        timezone: str = "Asia/Shanghai",
        horizon: float = HORIZON,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.adapters = adapters
        self.clock = clock or SystemClock()
        self.poll_seconds = poll_seconds
        self.batch = batch
        self.horizon = horizon
        self.language = language
        self.timezone = timezone
        self.limiters = {name: Limiter(a.windows) for name, a in adapters.items()}
        self._wake = asyncio.Event()
        self._stopping = False
        self._tasks: dict[int, asyncio.Task] = {}  # outbox id → its send task
        self._lease_checked = 0.0
        self._last_round = 0.0
        self._busy = False  # the last round started sends or some are in flight
        self._running = False  # run() is looping: its rounds carry the sent marks
        self._marks: list[tuple[Outbox, Sent, asyncio.Future]] = []
        self._marker: asyncio.Task | None = None
        # per channel: chat → monotonic time before which its own windows let nothing start
        self._held_chats: dict[str, dict[str, float]] = {}
        # with run(): the live senders of this bot split its chats and overall windows (senders.py)
        self.senders: Senders | None = None
        # per channel: chats whose earlier sends (another process's, or before a restart) have been
        # read into the limiter since the chats were last dealt out
        self._seeded: dict[str, set[str]] = {}

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        self._running = True
        self.senders = Senders(self.sessionmaker)
        try:
            await self._beat()
            if self.share.count > 1:
                # others are sending: let them see this process before it takes its chats
                await asyncio.sleep(HEARTBEAT * 1.5)
                await self._beat()
            await self._rounds()
        finally:
            self._running = False
            try:
                await self.senders.leave()
            except Exception as e:  # the database is gone: the row runs out on its own (TTL)
                log.warning("delivery: leaving the senders failed: %s", e)

    @property
    def share(self) -> Share:
        """This process's part of the bot's chats and rate (all of it without run())."""
        return self.senders.share if self.senders is not None else Share()

    async def _beat(self) -> None:
        """Refresh this sender's heartbeat; when the live senders change, deal the chats afresh."""
        before = self.senders.share
        try:
            share = await self.senders.beat()
        except (DBAPIError, OSError) as e:  # a lock or a lost connection: keep the last share
            log.warning("delivery heartbeat failed: %s", e)
            return
        if share != before:
            log.info("delivery: %d sender(s), this one sends to chat shard %d", share.count, share.index)
            for limiter in self.limiters.values():
                limiter.share(share.count)
            self._seeded.clear()

    async def _rounds(self) -> None:
        while not self._stopping:
            # cleared before the round, so a commit that lands during the round is not forgotten
            self._wake.clear()
            # under load every finished send wakes the loop: rounds (a window query each) at most
            # every BUSY_GAP; a worker whose last round had nothing to do answers a wake-up at once
            # (a reply to an idle bot would otherwise wait up to BUSY_GAP)
            gap = BUSY_GAP - (time.monotonic() - self._last_round)
            if gap > 0 and self._busy:
                await asyncio.sleep(gap)
            self._last_round = time.monotonic()
            if self.senders is not None and self.senders.due():
                await self._beat()
            try:
                started, wait = await self.deliver_due()
                self._busy = started > 0 or bool(self._tasks)
            except (DBAPIError, OSError) as e:  # a lock or a lost connection: the next round retries
                log.warning("delivery round failed: %s", e)
                wait = self.poll_seconds
            except Exception:
                log.exception("delivery round failed")
                wait = self.poll_seconds
            try:
                await asyncio.wait_for(self._wake.wait(), min(self.poll_seconds, wait))
            except TimeoutError:
                pass
        await self.settle(STOP_GRACE)

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    async def settle(self, grace: float | None = None) -> None:
        """Let every claimed row finish: sends in flight complete and are marked, the rest go back.
        With `grace`, sends still unanswered after that many seconds are cancelled (their rows go
        back to the queue as maybe sent), so a stop never waits on an unreachable platform."""
        deadline = None if grace is None else time.monotonic() + grace
        while self._tasks:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                log.warning("delivery stopping: %d send(s) unanswered after %.0f s, given up and queued again",
                            len(self._tasks), grace)
                for task in list(self._tasks.values()):
                    task.cancel()
                await asyncio.wait(list(self._tasks.values()))
                break
            await asyncio.wait(list(self._tasks.values()), timeout=left)
        if self._marker is not None and not self._marker.done():
            await self._marker  # the marks of sends that did finish

    async def drain(self, rounds: int = 50) -> None:
        """Deliver until nothing is due (the terminal and tests use this)."""
        idle = 0
        for _ in range(rounds * 20):
            started, wait = await self.deliver_due()
            if self._tasks:
                await self.settle()
                continue
            if started:
                continue
            if not await self._due_waiting():
                return
            idle += 1
            if idle > rounds:
                return
            await asyncio.sleep(min(wait, 1.5))

    # ------------------------------------------------------------ one round

    async def deliver_due(self) -> tuple[int, float]:
        """Start what may go now; returns (rows started, seconds until a round could start more)."""
        await self._release_stale()
        started, wait = 0, self.poll_seconds
        for channel, limiter in self.limiters.items():
            room = self.batch - len(self._tasks)
            if room <= 0:
                break
            cap = min(room, NO_LIMIT_BATCH)
            slots = limiter.free_slots(self.horizon, cap) if any(
                w.scope == "global" for w in limiter.windows) else cap
            if slots <= 0:
                wait = min(wait, max(0.01, limiter.next_at("", False) - time.monotonic() - self.horizon))
                continue
            now_m = time.monotonic()
            blocked: list[str] = []
            for chat_id, until in list(self._held(channel).items()):
                if until <= now_m + self.horizon:
                    del self._held(channel)[chat_id]
                else:
                    blocked.append(chat_id)
                    wait = min(wait, until - now_m - self.horizon)
            rows = await self._claim(channel, blocked, slots)
            for row in rows:
                if limiter.chat_ready_at(row.chat_id, row.is_group) > time.monotonic() + self.horizon:
                    # its own window is full (a group at 20/min): back to the queue, skipped a while
                    self._held(channel)[row.chat_id] = limiter.chat_ready_at(row.chat_id, row.is_group)
                    await self._write(self._unclaim, row)
                    continue
                at = limiter.reserve(row.chat_id, row.is_group)
                self._start(row, at)
                started += 1
            if rows and len(rows) >= slots:
                wait = min(wait, 0.05)
        return started, max(0.01, wait)

    def _held(self, channel: str) -> dict[str, float]:
        return self._held_chats.setdefault(channel, {})

    def _start(self, row: Outbox, at: float) -> None:
        task = asyncio.create_task(self._run_row(row, at))
        self._tasks[row.id] = task

    async def _run_row(self, row: Outbox, at: float) -> None:
        try:
            await self._deliver_one(row, at)
        except asyncio.CancelledError:
            # a stop gave up on the send: it may have reached the platform (a resend asks for the
            # duplicate check where there is one); a mark already queued still wins
            await self._write(self._release, row)
            raise
        except Exception:  # one row's trouble is logged and never stops the others
            log.exception("delivering outbox row %s failed", row.id)
        finally:
            limiter = self.limiters[row.channel]
            ready = limiter.chat_ready_at(row.chat_id, row.is_group)
            held = self._held(row.channel)
            held[row.chat_id] = max(ready, held.get(row.chat_id, 0.0))
            self._tasks.pop(row.id, None)
            self._wake.set()

    async def _release_stale(self) -> None:
        # rows left 'sending' by a crashed process go out again (at least once beats never)
        if time.monotonic() - self._lease_checked < 10:
            return
        self._lease_checked = time.monotonic()
        now = self.clock.now()
        async with self.sessionmaker() as session, session.begin():
            # counted as an attempt: it may have reached the platform (see OutgoingMessage.maybe_sent)
            await session.execute(
                update(Outbox)
                .where(Outbox.status == "sending", Outbox.claimed_at < now - LEASE,
                       Outbox.channel.in_(list(self.adapters)))
                .values(status="pending", attempts=Outbox.attempts + 1, error="lease expired: may have been sent")
            )

    async def _claim(self, channel: str, blocked: list[str], limit: int) -> list[Outbox]:
        """Each free chat's next row, most urgent first: a chat with a row in flight (here or in
        another process) or held back after a 429 gives nothing, so its order is kept."""
        now = self.clock.now()
        # a row is its chat's head when no other row of the chat is in flight or comes before it
        # (bulk after the rest, then by id); probed per candidate through ix_outbox_chat_queue,
        # candidates read in priority order through ix_outbox_claim, so a round reads little
        # more than what it claims however long the queue is
        before = _before_it()
        heads = (select(Outbox.id)
                 # coalesce: not an index condition, or SQLite picks the not_before index and
                 # sorts the whole queue each round instead of reading ix_outbox_claim in order
                 .where(Outbox.channel == channel, Outbox.status == "pending",
                        func.coalesce(Outbox.not_before, Outbox.not_before) <= now, ~before)
                 .order_by(Outbox.priority, Outbox.id).limit(limit))
        if blocked:
            heads = heads.where(Outbox.chat_id.not_in(blocked))
        share = self.share
        if share.count > 1:
            heads = heads.where(shard(self.sessionmaker.kw["bind"].dialect.name, Outbox.chat_id) % share.count
                                == share.index)
        marks = self._take_marks()
        try:
            async with self.sessionmaker() as session, session.begin():
                await self._write_sent(session, [(r, s) for r, s, _ in marks])
                ids = list((await session.execute(heads)).scalars())
                rows: list[Outbox] = []
                if ids:
                    # the status check makes a row another process claimed meanwhile drop out
                    claimed = await session.execute(
                        update(Outbox).where(Outbox.id.in_(ids), Outbox.status == "pending")
                        .values(status="sending", claimed_at=now)
                        .returning(Outbox),
                        execution_options={"synchronize_session": False})
                    rows = list(claimed.scalars())
                    if self.senders is not None:
                        await self._seed(session, channel, rows)
        except BaseException:
            self._marks_failed(marks)
            raise
        self._marks_done(marks)
        rows.sort(key=lambda r: (r.priority, r.id))
        return rows

    async def _seed(self, session: AsyncSession, channel: str, rows: list[Outbox]) -> None:
        """Count in the limiter what the chats of these rows were sent lately by someone else:
        the process that had them before the senders changed, or this bot before a restart. Read
        in the claiming transaction, after which no other process sends to these chats."""
        seeded = self._seeded.setdefault(channel, set())
        if len(seeded) > 200_000:  # bounded memory; a chat read again costs one small query
            seeded.clear()
        fresh = {r.chat_id: r.is_group for r in rows if r.chat_id not in seeded}
        if not fresh:
            return
        limiter = self.limiters[channel]
        now = self.clock.now()
        since = now - timedelta(seconds=limiter.longest_chat_span())
        ages: dict[str, list[float]] = {}
        for chat_id, sent_at in await session.execute(
                select(Outbox.chat_id, Outbox.sent_at).where(
                    Outbox.channel == channel, Outbox.chat_id.in_(list(fresh)), Outbox.status == "sent",
                    Outbox.sent_at >= since)):
            ages.setdefault(chat_id, []).append(max(0.0, (now - sent_at).total_seconds()))
        for chat_id, is_group in fresh.items():
            if chat_id in ages:
                limiter.seed(chat_id, is_group, ages[chat_id])
            seeded.add(chat_id)

    async def _due_waiting(self) -> bool:
        """A due row that is its chat's head: a row behind a held one (a WeChat reply window, a
        long rate-limit hold) is not waiting to be sent now, so `drain` need not wait for it."""
        now = self.clock.now()
        async with self.sessionmaker() as session:
            found = await session.execute(select(exists().where(
                Outbox.status == "pending", Outbox.channel.in_(list(self.adapters)), Outbox.not_before <= now,
                ~_before_it())))
            return bool(found.scalar())

    async def _write(self, fn: Callable[..., Awaitable[None]], *args, **kw) -> None:
        """A status write, retried while the database is locked or unreachable: a row that was sent
        and not marked would be sent again when its lease runs out."""
        deadline = time.monotonic() + STATUS_RETRY_SECONDS
        pause = 0.05
        while True:
            try:
                await fn(*args, **kw)
                return
            except (DBAPIError, OSError) as e:
                if time.monotonic() > deadline:
                    log.error("status write %s failed for %.0f s, giving up: %s", fn.__name__,
                              STATUS_RETRY_SECONDS, e)
                    raise
                log.warning("status write %s failed, retrying: %s", fn.__name__, e)
                await asyncio.sleep(pause)
                pause = min(pause * 2, 2.0)

    async def _unclaim(self, row: Outbox, until=None) -> None:
        async with self.sessionmaker() as session, session.begin():
            values: dict = {"status": "pending"}
            if until is not None:
                values["not_before"] = until
            await session.execute(update(Outbox).where(Outbox.id == row.id, Outbox.status == "sending")
                                  .values(**values))

    async def _release(self, row: Outbox) -> None:
        async with self.sessionmaker() as session, session.begin():
            await session.execute(update(Outbox).where(Outbox.id == row.id, Outbox.status == "sending")
                                  .values(status="pending", attempts=Outbox.attempts + 1,
                                          error="stopped with the send unanswered: may have been sent"))

    async def _pace(self, channel: str, chat_id: str, is_group: bool) -> None:
        limiter = self.limiters[channel]
        if self._stopping and limiter.next_at(chat_id, is_group) > time.monotonic():
            raise Stopping()
        await limiter.acquire(chat_id, is_group)

    async def _deliver_one(self, row: Outbox, at: float) -> None:
        """Send one row at its reserved slot (monotonic time) and record the outcome."""
        adapter = self.adapters[row.channel]
        # a card's look-ups come before the slot, so the send itself starts on time
        if row.card_key and await self._superseded(row):
            await self._write(self._finish, row, "superseded")
            return
        msg = OutgoingMessage(id=row.id, channel=row.channel, chat_id=row.chat_id, is_group=row.is_group,
                              payload=row.payload, card_key=row.card_key, maybe_sent=row.attempts > 0,
                              pace=lambda chat, group: self._pace(row.channel, chat, group))
        posted = await self._card_message(row) if row.card_key else None
        wait = at - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        if self._stopping:  # not sent yet: back to the queue for the next start
            await self._write(self._unclaim, row)
            return
        try:
            if posted is not None and adapter.can_edit:
                msg.edit_message_id = posted
                try:
                    await adapter.edit(msg, posted)
                    sent = Sent(posted)
                except MessageGone:
                    await msg.paced()
                    sent = await adapter.send(msg)
            elif posted is not None:
                short = {"text": row.payload.get("update_text") or row.payload.get("text", "")}
                if "buttons" in row.payload:
                    short["buttons"] = row.payload["buttons"]
                msg.payload = short
                sent = await adapter.send(msg)
            else:
                sent = await adapter.send(msg)
        except Stopping:
            await self._write(self._unclaim, row)
            return
        except RetryLater as e:
            # the row's not_before holds its chat (it stays the chat's head), on the office's clock
            until = self.clock.now() + timedelta(seconds=max(e.seconds, 0.5))
            await self._write(self._retry, row, until, str(e), count=False)
            return
        except TransientError as e:
            limit, cap, said = retry_policy(adapter)
            if row.attempts + 1 >= limit:
                await self._write(self._failed, row, f"gave up after {said}: {e}")
                return
            until = self.clock.now() + timedelta(seconds=backoff(row.attempts, cap))
            await self._write(self._retry, row, until, str(e), count=True)
            return
        except PermanentError as e:
            await self._write(self._failed, row, str(e))
            return
        except Exception as e:  # a bug in an adapter must not stop the others
            log.exception("sending outbox row %s failed", row.id)
            await self._write(self._failed, row, f"internal error: {e!r}")
            return
        await self._mark_sent(row, sent)

    async def _mark_sent(self, row: Outbox, sent: Sent) -> None:
        """Queue the row's 'sent' mark and wait until it is committed. On SQLite one connection
        writes at a time, and 30 commits a second each waiting for the lock fell behind the sends:
        so the next round's claiming transaction carries the marks queued since the last one (or,
        when no round comes within MARK_GAP, a transaction of their own). No mark waits for
        another row's send, and a chat's next row is claimed only after its mark is in."""
        done = asyncio.get_running_loop().create_future()
        self._marks.append((row, sent, done))
        self._wake.set()
        if self._marker is None or self._marker.done():
            self._marker = asyncio.create_task(self._write_marks())
        await done

    def _take_marks(self) -> list[tuple[Outbox, Sent, asyncio.Future]]:
        batch, self._marks = self._marks, []
        return batch

    def _marks_failed(self, batch: list[tuple[Outbox, Sent, asyncio.Future]]) -> None:
        """The transaction carrying these marks failed: they go back to the queue."""
        self._marks[:0] = batch
        if self._marker is None or self._marker.done():
            self._marker = asyncio.create_task(self._write_marks())

    @staticmethod
    def _marks_done(batch: list[tuple[Outbox, Sent, asyncio.Future]]) -> None:
        for _r, _s, done in batch:
            if not done.done():
                done.set_result(None)

    async def _write_marks(self) -> None:
        if self._running and not self._stopping:
            await asyncio.sleep(MARK_GAP)
        while self._marks:
            batch = self._take_marks()
            try:
                await self._write(self._sent_many, [(r, s) for r, s, _ in batch])
            except Exception as e:  # given up after STATUS_RETRY_SECONDS: the lease will resend
                for _r, _s, done in batch:
                    if not done.done():
                        done.set_exception(e)
                continue
            self._marks_done(batch)

    async def _sent_many(self, marks: list[tuple[Outbox, Sent]]) -> None:
        async with self.sessionmaker() as session, session.begin():
            await self._write_sent(session, marks)

    async def _write_sent(self, session: AsyncSession, marks: list[tuple[Outbox, Sent]]) -> None:
        if not marks:
            return
        now = self.clock.now()
        await session.execute(update(Outbox), [
            {"id": row.id, "status": "sent", "sent_at": now, "message_id": sent.message_id,
             "attempts": row.attempts + 1, "error": None} for row, sent in marks])
        for row, sent in marks:
            if row.card_key and sent.message_id:
                card = await session.get(CardMessage, (row.card_key, row.channel, row.chat_id))
                if card is None:
                    session.add(CardMessage(card_key=row.card_key, channel=row.channel, chat_id=row.chat_id,
                                            message_id=sent.message_id))
                else:
                    card.message_id = sent.message_id

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
