"""A test desk: people talk to the office through a plain 'test' channel and read the outbox."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select

from handlers.events import Inbound, Media, Reply
from handlers.office import Office
from workflows.context import Ctx
from workflows.models import Account, Case, GroupBinding, Node, Outbox, Person

from .pg import free_port  # noqa: F401  (one copy, shared by the channel tests)

CH = "test"


# ---------------------------------------------------------------- helpers for tests that run a real channel


class MovingClock:
    """Starts at a fixed date and moves with real time, so Delivery's retry holds expire while a
    test waits, yet dates stay predictable. `advance()` jumps ahead (a long platform wait, say)."""

    def __init__(self, start: datetime | None = None) -> None:
        if start is None:
            from .conftest import START

            start = START
        self.start = start
        self.offset = timedelta(0)
        self._t0 = time.monotonic()

    def now(self) -> datetime:
        return self.start + timedelta(seconds=time.monotonic() - self._t0) + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += timedelta(seconds=seconds)


async def until(check: Callable[[], Awaitable[bool] | bool], timeout: float = 5.0, what: str = "") -> None:
    """Polls `check` (plain or async) until it is true, or fails after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        ok = check()
        if isinstance(ok, Awaitable):
            ok = await ok
        if ok:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or check}")
        await asyncio.sleep(0.01)


class TrackingOffice(Office):
    """Remembers which events it has finished (and what it answered), so tests wait for exactly that."""

    def __init__(self, *a, **kw) -> None:
        super().__init__(*a, **kw)
        self.done: list[str | None] = []  # event ids, in the order handled (repeats included)
        self.handled: list[tuple[Inbound, Reply]] = []

    async def handle(self, inbound: Inbound) -> Reply:
        reply = await super().handle(inbound)
        self.done.append(inbound.event_id)
        self.handled.append((inbound, reply))
        return reply


@dataclass
class Seen:
    id: int
    chat_id: str
    text: str
    buttons: list[list[dict]]
    payload: dict
    card_key: str | None
    status: str

    def labels(self) -> list[str]:
        return [b["label"] for row in self.buttons for b in row]

    def token(self, label: str) -> str:
        for row in self.buttons:
            for b in row:
                if b["label"] == label:
                    return b["token"]
        raise AssertionError(f"no button {label!r} in {self.labels()} of: {self.text[:200]}")


class Reads:
    """Looking at the database the way the tests do; needs `self.sm`, a sessionmaker."""

    sm: object

    async def case(self, number: str | None = None) -> Case | None:
        """The case with that number, or the newest one."""
        async with self.sm() as s:
            stmt = select(Case).order_by(Case.id.desc()).limit(1)
            if number:
                stmt = select(Case).where(Case.number == number)
            return (await s.execute(stmt)).scalar_one_or_none()

    async def count(self, model, *where) -> int:
        async with self.sm() as s:
            return (await s.execute(select(func.count()).select_from(model).where(*where))).scalar_one()


class Desk(Reads):
    def __init__(self, sessionmaker, clock, channels=frozenset({CH})) -> None:
        self.sm = sessionmaker
        self.clock = clock
        self.office = Office(sessionmaker, clock=clock, channels=channels)
        self._ids = itertools.count(1)

    def ctx(self, session) -> Ctx:
        return self.office.ctx(session)

    async def setup_chats(self) -> None:
        """Every node's group bound on the test channel, every staff member linked."""
        async with self.sm() as s, s.begin():
            for node in (await s.execute(select(Node))).scalars():
                s.add(GroupBinding(node_id=node.id, channel=CH, chat_id=f"g:{node.code}", status="active",
                                   title=node.name, bound_at=self.clock.now()))
            for p in (await s.execute(select(Person).where(Person.code.is_not(None)))).scalars():
                s.add(Account(channel=CH, external_id=p.code, chat_id=f"p:{p.code}", person_id=p.id,
                              created_at=self.clock.now()))

    # ---- talking

    async def send(self, user: str, text: str | None = None, *, group: str | None = None, **kw) -> Reply:
        chat = f"g:{group}" if group else f"p:{user}"
        kw.setdefault("event_id", f"e{next(self._ids)}")
        return await self.office.handle(Inbound(channel=CH, chat_id=chat, user_id=user, user_name=kw.pop("name", user),
                                                is_group=group is not None, text=text, **kw))

    async def press(self, user: str, label: str, *, chat: str | None = None, group: str | None = None) -> Reply:
        """Press the button with this label on the newest message in the chat that has it."""
        chat = chat or (f"g:{group}" if group else f"p:{user}")
        for msg in reversed(await self.messages(chat)):
            if label in msg.labels():
                return await self.send(user, kind="button", button=msg.token(label),
                                       group=chat[2:] if chat.startswith("g:") else None)
        raise AssertionError(f"no button {label!r} in chat {chat}: {[m.text[:60] for m in await self.messages(chat)]}")

    async def photo(self, user: str, ref: str = "photo-1", size: int = 1000) -> Reply:
        return await self.send(user, media=[Media(kind="photo", ref=ref, channel=CH, size=size)])

    # ---- reading

    async def messages(self, chat: str) -> list[Seen]:
        async with self.sm() as s:
            rows = (await s.execute(select(Outbox).where(Outbox.chat_id == chat).order_by(Outbox.id))).scalars()
            return [Seen(r.id, r.chat_id, r.payload.get("text", ""), r.payload.get("buttons", []), r.payload,
                         r.card_key, r.status) for r in rows]

    async def last(self, chat: str) -> Seen:
        msgs = await self.messages(chat)
        assert msgs, f"nothing sent to {chat}"
        return msgs[-1]

    async def last_text(self, user: str) -> str:
        return (await self.last(f"p:{user}")).text

    async def person(self, code: str) -> Person:
        async with self.sm() as s:
            return (await s.execute(select(Person).where(Person.code == code))).scalar_one()

    async def node_of(self, case: Case) -> Node:
        async with self.sm() as s:
            return await s.get(Node, case.grid_id)

    async def node(self, code: str) -> Node:
        async with self.sm() as s:
            return (await s.execute(select(Node).where(Node.code == code))).scalar_one()
