"""One driver per channel, all with the same verbs, so one scenario suite runs against every channel.

Every driver runs the channel's real runtime in-process (the terminal shell, python-telegram-bot or
aiogram long polling, the WeChat Work callback server) with the office and the delivery worker as
`gridbot run` wires them; remote platforms are local fake HTTP servers (tests/fakes).

People are named by `who`: a staff member by their person code (CY01-L), anyone else is a resident
with that name. Each driver maps `who` to an identity on its platform.

Verbs (see `Driver`):
  start() / stop() / restart() / close()      the runtime and the office; restart keeps the database
                                              and the remote platform, like a new process would
  as_staff(code)                              link the person's account on this platform
  bind_group(node_code)                       make a chat on this platform the node's work group
  say(who, text, times=1)                     a private message; times=2: the platform delivers the
                                              very same event twice
  location(who, lat, lon)                     a private location message
  press(who, label, group=None, seen_by=None, times=1)
                                              press the newest button with this label that
                                              `seen_by` (default: who) can see, in the node's group
                                              or privately; returns the answer shown, if any
  repeat_last(who)                            the platform delivers who's last event once more
  private_texts(who) / group_texts(node)      what the platform received for that chat, in order
  delivered_count(who)                        how many messages reached who's private chat
  fail_next_send(who)                         the platform answers the next send with its rate limit
  send_attempts(who)                          ok/refused per send to who, as the platform saw them
"""

from __future__ import annotations

import asyncio
import io
import itertools
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Protocol

import aiohttp
import xmltodict
from sqlalchemy import and_, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from wechatpy.enterprise import WeChatCrypto

from bot.app import build_channels
from bot.channels.base import OutgoingMessage, Sent
from bot.channels.terminal import TerminalAdapter, TerminalShell
from bot.delivery import Delivery
from bot.ratelimit import Limiter
from bot.settings import Settings
from bot.wecom_cli import create_group
from handlers.events import Inbound, Reply
from workflows import accounts
from workflows.context import Ctx
from workflows.models import Assignment, GroupBinding, Node, Outbox, Person

from ..fakes.telegram_api import BOT_USERNAME, FakeTelegram
from ..fakes.telegram_api import Person as TgUser
from ..fakes.wecom_api import CORP_ID, SECRET, FakeWeCom
from ..support import MovingClock, TrackingOffice, free_port, until


class Driver(Protocol):
    name: str
    channel: str
    platform_limits: bool  # the platform can answer "too many requests"
    rate_limit_wait: float  # seconds that answer asks for
    sm: async_sessionmaker[AsyncSession]
    clock: MovingClock
    office: TrackingOffice | None

    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    async def restart(self) -> None: ...
    async def close(self) -> None: ...
    async def as_staff(self, code: str) -> None: ...
    async def bind_group(self, node_code: str) -> None: ...
    async def say(self, who: str, text: str, *, times: int = 1) -> None: ...
    async def location(self, who: str, lat: float, lon: float) -> None: ...
    async def press(self, who: str, label: str, *, group: str | None = None, seen_by: str | None = None,
                    times: int = 1) -> str | None: ...
    async def repeat_last(self, who: str) -> None: ...
    def private_texts(self, who: str) -> list[str]: ...
    def group_texts(self, node_code: str) -> list[str]: ...
    def delivered_count(self, who: str) -> int: ...
    def fail_next_send(self, who: str) -> None: ...
    def send_attempts(self, who: str) -> list[bool]: ...
    def private_chat(self, who: str) -> str: ...


class _Base:
    """What every driver shares: the office, the database, the demo people."""

    name = ""
    channel = ""
    platform_limits = True
    rate_limit_wait = 0.0

    def __init__(self, sessionmaker) -> None:
        self.sm = sessionmaker
        self.clock = MovingClock()
        self.office: TrackingOffice | None = None
        self.delivery: Delivery | None = None
        self.staff: set[str] = set()

    def ctx(self, session) -> Ctx:
        return Ctx(session=session, clock=self.clock, channels=frozenset({self.channel}))

    def _new_office(self) -> TrackingOffice:
        return TrackingOffice(self.sm, clock=self.clock, channels=frozenset({self.channel}),
                              on_commit=self.delivery.wake if self.delivery else None)

    def _new_delivery(self, adapter) -> Delivery:
        delivery = Delivery(self.sm, {self.channel: adapter}, clock=self.clock, poll_seconds=0.05)
        # the per-chat windows are tested on their own; here they would only make the suite slow
        delivery.limiters[self.channel] = Limiter(())
        return delivery

    async def person(self, code: str) -> Person:
        async with self.sm() as s:
            return (await s.execute(select(Person).where(Person.code == code))).scalar_one()

    async def leader_of(self, node_code: str) -> str:
        async with self.sm() as s:
            return (await s.execute(
                select(Person.code).join(Assignment, Assignment.person_id == Person.id)
                .join(Node, Node.id == Assignment.node_id)
                .where(Node.code == node_code, Assignment.role == "leader").order_by(Assignment.id).limit(1)
            )).scalar_one()

    async def _link(self, code: str, external_id: str, chat_id: str) -> Person:
        async with self.sm() as s, s.begin():
            person = (await s.execute(select(Person).where(Person.code == code))).scalar_one()
            await accounts.link(self.ctx(s), person, self.channel, external_id, chat_id, person.name)
        self.staff.add(code)
        return person

    async def quiet(self) -> bool:
        async with self.sm() as s:
            n = await s.execute(select(func.count()).select_from(Outbox).where(
                Outbox.channel == self.channel, Outbox.status.in_(["pending", "sending"])))
            return n.scalar_one() == 0

    async def restart(self) -> None:
        await self.stop()
        await self.start()

    def delivered_count(self, who: str) -> int:
        return len(self.private_texts(who))


# ====================================================================== terminal


@dataclass
class Shown:
    seq: int
    generation: int  # which shell process printed it (button numbers die with the process)
    chat_id: str
    text: str
    buttons: dict[str, int] = field(default_factory=dict)  # label -> number to type


class RecordingTerminal(TerminalAdapter):
    """The real terminal adapter; also notes what it printed, per chat, with the button numbers."""

    def __init__(self, out, log: list[Shown], generation: int, seq: itertools.count) -> None:
        super().__init__(out)
        self.log, self.generation, self.seq = log, generation, seq

    def _note(self, msg: OutgoingMessage) -> None:
        first = len(self.buttons)
        labels = [b["label"] for row in msg.buttons for b in row]
        self.log.append(Shown(next(self.seq), self.generation, msg.chat_id, msg.text,
                              {label: first + n + 1 for n, label in enumerate(labels)}))

    async def send(self, msg: OutgoingMessage) -> Sent:
        self._note(msg)
        return await super().send(msg)

    async def edit(self, msg: OutgoingMessage, message_id: str) -> None:
        self._note(msg)
        await super().edit(msg, message_id)


class TerminalOffice(TrackingOffice):
    """The terminal has no platform event ids; the driver gives each line one, so repeats can be tested."""

    def __init__(self, *a, ids: itertools.count, last: dict[str, Inbound], **kw) -> None:
        super().__init__(*a, **kw)
        self.ids, self.last = ids, last

    async def handle(self, inbound: Inbound) -> Reply:
        if inbound.event_id is None:
            inbound.event_id = f"terminal-{next(self.ids)}"
            self.last[inbound.user_id] = inbound
        return await super().handle(inbound)


class TerminalDriver(_Base):
    """`gridbot shell` in-process: lines typed into TerminalShell.handle_line, output captured.

    Every node has a terminal 'group' and every staff member an account as soon as the shell
    starts (TerminalShell.prepare), so as_staff only checks the person exists. No platform stands
    between the bot and the screen, so nothing can answer "too many requests"."""

    name = "terminal"
    channel = "terminal"
    platform_limits = False

    def __init__(self, sessionmaker) -> None:
        super().__init__(sessionmaker)
        self.out = io.StringIO()
        self.log: list[Shown] = []
        self.generation = 0
        self._seq = itertools.count(1)
        self._ids = itertools.count(1)
        self.last: dict[str, Inbound] = {}
        self.shell: TerminalShell | None = None
        self.acting: str | None = None

    async def start(self) -> None:
        self.generation += 1
        self.adapter = RecordingTerminal(self.out, self.log, self.generation, self._seq)
        self.delivery = self._new_delivery(self.adapter)
        self.office = TerminalOffice(self.sm, clock=self.clock, channels=frozenset({self.channel}),
                                     on_commit=self.delivery.wake, ids=self._ids, last=self.last)
        self.shell = TerminalShell(self.office, self.delivery, self.adapter, out=self.out)
        self.acting = None
        await self.shell.prepare()
        await self.delivery.drain()

    async def stop(self) -> None:
        self.shell = self.office = self.delivery = None

    async def close(self) -> None:
        await self.stop()

    def user_id(self, who: str) -> str:
        return who if who in self.staff else f"resident:{who}"

    def private_chat(self, who: str) -> str:
        return f"dm:{self.user_id(who)}"

    async def as_staff(self, code: str) -> None:
        async with self.sm() as s:
            n = await s.execute(select(func.count()).select_from(Person).where(Person.code == code))
            assert n.scalar_one() == 1
        self.staff.add(code)

    async def bind_group(self, node_code: str) -> None:
        # the shell bound a terminal 'group' to every node when it started; /bind typed into that
        # group by the node's leader goes the same way as on a platform and must keep it bound
        async with self.sm() as s, s.begin():
            token = await accounts.bind_token(self.ctx(s), node_code)
        await self._become(await self.leader_of(node_code))
        assert await self.shell.handle_line(f":group {node_code}")
        before = len(self.office.handled)
        assert await self.shell.handle_line(f"/bind {token}")
        assert len(self.office.handled) == before + 1
        assert any("本群已绑定" in t for t in self.group_texts(node_code)), self.group_texts(node_code)
        async with self.sm() as s:
            binding = (await s.execute(select(GroupBinding).join(Node, Node.id == GroupBinding.node_id).where(
                Node.code == node_code, GroupBinding.channel == self.channel))).scalar_one()
        assert binding.chat_id == f"group:{node_code}" and binding.status == "active"

    async def _become(self, who: str) -> None:
        if self.acting != who:
            if who in self.staff:
                assert await self.shell.act_as(who)
            else:
                self.shell.act_as_resident(who)
            self.acting = who
        await self.shell.handle_line(":dm")  # typed text goes to the private chat

    async def _line(self, who: str, line: str, times: int) -> Reply:
        await self._become(who)
        before = len(self.office.handled)
        assert await self.shell.handle_line(line)
        assert len(self.office.handled) == before + 1, f"{line!r} was not handed to the office"
        for _ in range(times - 1):
            await self.repeat_last(who)
        return self.office.handled[before][1]

    async def say(self, who: str, text: str, *, times: int = 1) -> None:
        assert not text.startswith(":") and not text.strip().isdigit(), "the shell would take that as a command"
        await self._line(who, text, times)

    async def location(self, who: str, lat: float, lon: float) -> None:
        await self._line(who, f":loc {lat} {lon}", 1)

    async def press(self, who: str, label: str, *, group: str | None = None, seen_by: str | None = None,
                    times: int = 1) -> str | None:
        chats = {self.private_chat(seen_by or who)} | ({f"group:{group}"} if group else set())
        for shown in reversed(self.log):
            if shown.generation == self.generation and shown.chat_id in chats and label in shown.buttons:
                number = shown.buttons[label]
                break
        else:
            raise AssertionError(f"no button {label!r} on screen for {who} in {chats}")
        reply = await self._line(who, str(number), times)
        if reply.alert:
            # what the shell shows: the alert, or the same words already written into the chat
            assert f"(提示) {reply.alert}" in self.out.getvalue() or reply.alert in self.out.getvalue()
        return reply.alert

    async def repeat_last(self, who: str) -> None:
        inbound = self.last[self.user_id(who)]
        await self.office.handle(inbound)  # the same Inbound, the same event id
        await self.delivery.drain()

    def _texts(self, chat: str) -> list[str]:
        return [s.text for s in self.log if s.chat_id == chat]

    def private_texts(self, who: str) -> list[str]:
        return self._texts(self.private_chat(who))

    def group_texts(self, node_code: str) -> list[str]:
        return self._texts(f"group:{node_code}")

    def fail_next_send(self, who: str) -> None:
        raise NotImplementedError("the terminal prints; there is no platform to refuse a message")

    def send_attempts(self, who: str) -> list[bool]:
        return [True] * len(self.private_texts(who))


# ====================================================================== Telegram (python-telegram-bot, aiogram)


async def count_pending(sm) -> int:
    from workflows.inbox_models import InboxUpdate

    async with sm() as s:
        return (await s.execute(select(func.count()).select_from(InboxUpdate)
                                .where(InboxUpdate.status == "pending"))).scalar_one()


class TelegramDriver(_Base):
    """The real PTB or aiogram runtime, long polling a fake Bot API server."""

    channel = "telegram"
    rate_limit_wait = 1.0

    def __init__(self, sessionmaker, framework: str) -> None:
        super().__init__(sessionmaker)
        self.name = f"telegram-{framework}"
        self.framework = framework
        self.tg: FakeTelegram | None = None
        self.runtime = None
        self._task: asyncio.Task | None = None
        self.users: dict[str, TgUser] = {}
        self.groups: dict[str, int] = {}
        self.last: dict[str, dict] = {}  # who -> their last update, as the platform sent it
        self._ids = itertools.count(1)
        self._queries = itertools.count(1)

    async def start(self) -> None:
        if self.tg is None:
            self.tg = await FakeTelegram().start()
        settings = Settings(_env_file=None, telegram_bot_token=self.tg.token, telegram_api_base_url=self.tg.base_url,
                            telegram_framework=self.framework)
        (self.runtime,) = build_channels(settings)  # as `gridbot run` picks it
        self.delivery = self._new_delivery(self.runtime.adapter)
        self.office = self._new_office()
        await self.runtime.start(self.office)
        self._task = asyncio.create_task(self.delivery.run())

    async def stop(self) -> None:
        if self.runtime is not None:
            await self.runtime.stop()
        if self.delivery is not None:
            self.delivery.stop()
            await self._task
        self.runtime = self.delivery = self.office = self._task = None

    async def close(self) -> None:
        await self.stop()
        if self.tg is not None:
            await self.tg.stop()

    # ------------------------------------------------------------------ identities

    def user(self, who: str) -> TgUser:
        if who not in self.users:
            self.users[who] = TgUser(500 + next(self._ids), who)
        return self.users[who]

    def private_chat(self, who: str) -> str:
        return str(self.user(who).id)

    def group_chat(self, node_code: str) -> int:
        return self.groups.setdefault(node_code, -1001000000 - len(self.groups))

    async def as_staff(self, code: str) -> None:
        person = await self.person(code)
        self.users[code] = user = TgUser(600 + next(self._ids), person.name)
        await self._link(code, str(user.id), str(user.id))

    async def bind_group(self, node_code: str) -> None:
        async with self.sm() as s, s.begin():
            token = await accounts.bind_token(self.ctx(s), node_code)
        leader = await self.leader_of(node_code)
        await self._push(leader, self.tg.message_update(self.user(leader), group=self.group_chat(node_code),
                                                        title=f"{node_code} 工作群",
                                                        text=f"/bind@{BOT_USERNAME} {token}"))
        assert any("本群已绑定" in t for t in self.group_texts(node_code)), self.group_texts(node_code)

    # ------------------------------------------------------------------ events

    async def _settle(self, update_id: int, handled: int = 1, query: str | None = None) -> None:
        await until(lambda: self.office.done.count(str(update_id)) >= 1, 5, f"update {update_id}")
        if handled > 1:
            # the inbox may take a repeat in the same getUpdates batch before the office sees it:
            # wait until every copy is confirmed (offset past it) and nothing is left in the inbox
            async def absorbed() -> bool:
                polls = self.tg.calls_of("getUpdates")
                if not polls or int(polls[-1].params.get("offset") or 0) <= update_id:
                    return False
                return await count_pending(self.sm) == 0

            await until(absorbed, 5, f"repeats of update {update_id}")
        if query is not None:
            await until(lambda: self._answer(query) is not None, 5, f"answer to query {query}")
        await until(self.quiet, 8, "delivery")

    async def _push(self, who: str, update: dict, times: int = 1, query: str | None = None) -> int:
        update_id = self.tg.push(update)
        for _ in range(times - 1):  # the same update again, before the bot confirmed the first
            self.tg.push(dict(update))
        self.last[who] = update
        await self._settle(update_id, times, query)
        return update_id

    async def say(self, who: str, text: str, *, times: int = 1) -> None:
        await self._push(who, self.tg.message_update(self.user(who), text=text), times)

    async def location(self, who: str, lat: float, lon: float) -> None:
        await self._push(who, self.tg.message_update(self.user(who), location={"latitude": lat, "longitude": lon}))

    def _find(self, chats: list[str], label: str) -> tuple[str, int, str]:
        order = {}
        for n, c in enumerate(self.tg.calls):
            if c.method.startswith("send") and c.status == 200 and isinstance(c.result, dict):
                order[(c.chat_id, c.result["message_id"])] = n
        best = None
        for (chat, message_id), msg in self.tg.messages.items():
            if chat not in chats:
                continue
            for row in (msg.get("reply_markup") or {}).get("inline_keyboard", []):
                for b in row:
                    if b["text"] == label:
                        rank = order.get((chat, message_id), -1)
                        if best is None or rank > best[0]:
                            best = (rank, chat, message_id, b["callback_data"])
        if best is None:
            raise AssertionError(f"no button {label!r} in chats {chats}")
        return best[1:]

    def _answer(self, query: str) -> dict | None:
        for c in self.tg.calls_of("answerCallbackQuery"):
            if c.params.get("callback_query_id") == query:
                return c.params
        return None

    async def press(self, who: str, label: str, *, group: str | None = None, seen_by: str | None = None,
                    times: int = 1) -> str | None:
        chats = ([str(self.group_chat(group))] if group else []) + [self.private_chat(seen_by or who)]
        chat, message_id, data = self._find(chats, label)
        query = str(next(self._queries))
        update = {"callback_query": {"id": query, "from": self.user(who).as_user(),
                                     "message": dict(self.tg.message(chat, message_id)),
                                     "chat_instance": "ci", "data": data}}
        await self._push(who, update, times, query)
        return self._answer(query).get("text")

    async def repeat_last(self, who: str) -> None:
        """Telegram sends an update again only to a bot that never confirmed it (a process that
        died before its next getUpdates): this reaches the office only after a restart."""
        update = self.last[who]
        self.tg.push(dict(update))
        before = self.office.done.count(str(update["update_id"]))
        query = update.get("callback_query", {}).get("id")
        await until(lambda: self.office.done.count(str(update["update_id"])) > before, 5,
                    f"repeated update {update['update_id']}")
        if query is not None:
            await until(lambda: len([c for c in self.tg.calls_of("answerCallbackQuery")
                                     if c.params.get("callback_query_id") == query]) >= 2, 5, "answer")
        await until(self.quiet, 5, "delivery")

    # ------------------------------------------------------------------ what the platform received

    def _texts(self, chat: str) -> list[str]:
        return [c.params["text"] for c in self.tg.calls_of("sendMessage", "editMessageText", chat=chat)
                if c.status == 200]

    def private_texts(self, who: str) -> list[str]:
        return self._texts(self.private_chat(who))

    def group_texts(self, node_code: str) -> list[str]:
        return self._texts(str(self.group_chat(node_code)))

    def delivered_count(self, who: str) -> int:
        return len([c for c in self.tg.sent_to(self.private_chat(who)) if c.status == 200])

    def fail_next_send(self, who: str) -> None:
        # the fake fails the next sendMessage whoever it is for; the scenario sends to one chat only
        self.tg.fail_next("sendMessage", 1, status=429, retry_after=int(self.rate_limit_wait))

    def send_attempts(self, who: str) -> list[bool]:
        return [c.status == 200 for c in self.tg.sent_to(self.private_chat(who))]


# ====================================================================== WeChat Work


TOKEN = "callbacktoken"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
AGENT = "1000002"


def cdata(v: object) -> str:
    return f"<![CDATA[{v}]]>"


class WeComDriver(_Base):
    """The real callback server, sent callbacks encrypted with wechatpy's WeChatCrypto; replies go
    through the real adapter (wechatpy) to a fake WeChat Work API.

    WeChat Work groups are app chats: nobody writes to the bot there, so a group is made with
    `gridbot wecom create-group` (bot.wecom_cli.create_group), the card goes there as markdown and
    the node's leader gets its buttons privately as a template card.

    The delivery worker runs between callbacks (settle), not beside them, as in tests/test_wecom.py.
    A rate-limit answer (45009) holds a message for 60 s; settle lets that time pass by moving the
    clock forward to the hold's end, as a platform wait would, and records how far it moved it."""

    name = "wecom"
    channel = "wecom"
    rate_limit_wait = 60.0

    def __init__(self, sessionmaker) -> None:
        super().__init__(sessionmaker)
        self.api: FakeWeCom | None = None
        self.runtime = None
        self.port = free_port()
        self.crypto = WeChatCrypto(TOKEN, AES_KEY, CORP_ID)
        self.userids: dict[str, str] = {}
        self.groups: dict[str, str] = {}
        self.last: dict[str, str] = {}  # who -> plain XML of their last callback
        self.waited = 0.0  # seconds the clock was moved on for rate-limit holds
        self._seq = itertools.count(1)
        self._ts = itertools.count(int(self.clock.now().timestamp()))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/wecom/callback"

    async def start(self) -> None:
        if self.api is None:
            self.api = await FakeWeCom().start()
        settings = Settings(_env_file=None, wecom_corp_id=CORP_ID, wecom_agent_id=AGENT, wecom_secret=SECRET,
                            wecom_token=TOKEN, wecom_aes_key=AES_KEY, wecom_callback_host="127.0.0.1",
                            wecom_callback_port=self.port, wecom_api_base_url=self.api.base_url)
        (self.runtime,) = build_channels(settings)
        self.delivery = self._new_delivery(self.runtime.adapter)
        self.office = self._new_office()
        await self.runtime.start(self.office)

    async def stop(self) -> None:
        if self.runtime is not None:
            await self.runtime.stop()
        self.runtime = self.delivery = self.office = None

    async def close(self) -> None:
        await self.stop()
        if self.api is not None:
            await self.api.stop()

    # ------------------------------------------------------------------ identities

    def userid(self, who: str) -> str:
        if who not in self.userids:
            self.userids[who] = who.lower() if who in self.staff else f"res{next(self._seq)}"
        return self.userids[who]

    def private_chat(self, who: str) -> str:
        return self.userid(who)

    async def as_staff(self, code: str) -> None:
        self.staff.add(code)
        self.userids[code] = code.lower()
        await self._link(code, code.lower(), code.lower())

    async def bind_group(self, node_code: str) -> None:
        async with self.sm() as s, s.begin():
            self.groups[node_code] = await create_group(s, self.runtime.api, node_code, self.clock)

    # ------------------------------------------------------------------ callbacks

    def xml(self, user: str, msgtype: str, body: str) -> str:
        ts = next(self._ts)
        mid = f"<MsgId>{7_000_000 + next(self._seq)}</MsgId>" if msgtype != "event" else ""
        return (f"<xml><ToUserName>{cdata(CORP_ID)}</ToUserName><FromUserName>{cdata(user)}</FromUserName>"
                f"<CreateTime>{ts}</CreateTime><MsgType>{cdata(msgtype)}</MsgType>{body}{mid}"
                f"<AgentID>{AGENT}</AgentID></xml>")

    async def post(self, plain: str) -> None:
        nonce, ts = f"n{next(self._seq)}", str(int(time.time()))
        d = xmltodict.parse(self.crypto.encrypt_message(plain, nonce, ts))["xml"]
        body = (f"<xml><ToUserName>{cdata(CORP_ID)}</ToUserName><Encrypt>{cdata(d['Encrypt'])}</Encrypt>"
                f"<AgentID>{cdata(AGENT)}</AgentID></xml>")
        params = {"msg_signature": d["MsgSignature"], "timestamp": ts, "nonce": nonce}
        async with aiohttp.ClientSession() as http, http.post(self.url, params=params, data=body.encode()) as r:
            await r.read()
            assert r.status == 200, r.status

    async def settle(self) -> None:
        await self.runtime.idle()
        await self.delivery.drain()
        for _ in range(5):
            async with self.sm() as s:
                held = (await s.execute(select(func.min(Outbox.not_before)).where(
                    Outbox.channel == self.channel, Outbox.status == "pending"))).scalar()
            if held is None:
                break
            wait = (held - self.clock.now()).total_seconds()
            if wait > 0:  # a rate-limit hold: let the time pass
                self.clock.advance(wait + 0.01)
                self.waited += wait
            await self.delivery.drain()
        assert await self.quiet()

    async def _send(self, who: str, plain: str, times: int = 1) -> Reply | None:
        before = len(self.office.handled)
        for _ in range(times):  # WeChat Work repeats a callback it thinks went unanswered
            await self.post(plain)
        self.last[who] = plain
        await self.settle()
        new = self.office.handled[before:]
        return new[0][1] if new else None

    async def say(self, who: str, text: str, *, times: int = 1) -> None:
        await self._send(who, self.xml(self.userid(who), "text", f"<Content>{cdata(text)}</Content>"), times)

    async def location(self, who: str, lat: float, lon: float) -> None:
        # the contract's points are WGS-84; a WeChat Work client reports the same place in GCJ-02
        from workflows.geo import from_wgs84

        lat, lon = from_wgs84(lat, lon, "gcj02")
        await self._send(who, self.xml(self.userid(who), "location",
                                       f"<Location_X>{lat}</Location_X><Location_Y>{lon}</Location_Y>"
                                       f"<Scale>15</Scale><Label>{cdata('现场')}</Label>"))

    def _find(self, userid: str, label: str) -> tuple[str, str]:
        """('key', template card button key) or ('number', what to reply to a numbered list):
        a choice of more buttons than a card holds comes as a numbered text list."""
        for call in reversed(self.api.sent_to_user(userid)):
            for text, key in call.buttons():
                if text == label:
                    return "key", key
            if call.msgtype == "text":
                for line in call.content().splitlines():
                    number, dot, rest = line.partition(". ")
                    if dot and number.isdigit() and rest == label:
                        return "number", number
        raise AssertionError(f"no button {label!r} sent to {userid}")

    async def press(self, who: str, label: str, *, group: str | None = None, seen_by: str | None = None,
                    times: int = 1) -> str | None:
        # the group (an app chat) carries no buttons: they are in the private template cards
        kind, key = self._find(self.userid(seen_by or who), label)
        before = len(self.private_texts(who))
        if kind == "number":
            assert seen_by in (None, who), "a numbered list answers only its own chat"
            plain = self.xml(self.userid(who), "text", f"<Content>{cdata(key)}</Content>")
        else:
            plain = self.xml(self.userid(who), "event",
                             f"<Event>{cdata('template_card_event')}</Event>"
                             f"<EventKey>{cdata(key)}</EventKey><TaskId>{cdata('t')}</TaskId>"
                             f"<CardType>{cdata('button_interaction')}</CardType>"
                             f"<ResponseCode>{cdata('rc')}</ResponseCode>")
        reply = await self._send(who, plain, times)
        if reply is None or not reply.alert:
            return None
        # WeChat Work has no pop-up answer: the answer arrives as a message
        shown = self.private_texts(who)[before:]
        assert any(reply.alert in t for t in shown), (reply.alert, shown)
        return reply.alert

    async def repeat_last(self, who: str) -> None:
        await self._send(who, self.last[who])

    # ------------------------------------------------------------------ what the platform received

    def private_texts(self, who: str) -> list[str]:
        return [c.content() for c in self.api.sent_to_user(self.userid(who))]

    def group_texts(self, node_code: str) -> list[str]:
        return [c.content() for c in self.api.sent_to_chat(self.groups[node_code])]

    def fail_next_send(self, who: str) -> None:
        # the fake fails the next message/send whoever it is for; the scenario sends to one member only
        self.api.fail_next("message/send", 45009, "api freq out of limit")

    def send_attempts(self, who: str) -> list[bool]:
        userid = self.userid(who)
        return [c.ok for c in self.api.calls_of("message/send") if userid in c.body.get("touser", "").split("|")]


# ====================================================================== 微信客服 (WeChat customer service)


KF_TOKEN = "kfcallbacktoken"


class ResidentDoorDriver(WeComDriver):
    """Residents on personal WeChat through one of the office's doors (微信客服 or the 公众号), the
    grid's staff on WeChat Work, as one `gridbot run` serves both: one web server with both
    callbacks, one delivery worker with both adapters. Residents only write privately: the group
    actions are the staff's, on WeChat Work, exactly as in WeComDriver. A subclass says how the
    door's fake is started and configured, how a resident's message reaches it, and what the
    resident received."""

    channel = "wecom"  # the staff's accounts and the grid's group
    resident_channel = ""
    door_label = ""

    def __init__(self, sessionmaker) -> None:
        super().__init__(sessionmaker)
        self.door = None  # the resident channel's runtime
        self.server = None
        self.last_message: dict[str, object] = {}  # who -> their last message, as _resident takes it

    async def _start_fakes(self) -> None: ...

    def _door_settings(self) -> dict: ...

    async def start(self) -> None:
        from bot.web import from_settings

        await self._start_fakes()
        settings = Settings(_env_file=None, wecom_corp_id=CORP_ID, wecom_agent_id=AGENT, wecom_secret=SECRET,
                            wecom_token=TOKEN, wecom_aes_key=AES_KEY, http_host="127.0.0.1", http_port=self.port,
                            wecom_api_base_url=self.api.base_url, **self._door_settings())
        self.runtime, self.door = build_channels(settings)
        channels = frozenset({self.channel, self.resident_channel})
        self.delivery = Delivery(self.sm, {self.channel: self.runtime.adapter, self.resident_channel: self.door.adapter},
                                 clock=self.clock, poll_seconds=0.05)
        for name in channels:
            self.delivery.limiters[name] = Limiter(())
        self.office = TrackingOffice(self.sm, clock=self.clock, channels=channels, on_commit=self.delivery.wake)
        self.server = from_settings(settings, self.sm, self.clock)
        for c in (self.runtime, self.door):
            c.routes(self.server)
            await c.start(self.office)
        await self.server.start()

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop()
        for c in (self.runtime, self.door):
            if c is not None:
                await c.stop()
        self.runtime = self.door = self.server = self.delivery = self.office = None

    def _open_chats(self):
        """Rows not held: a row held for a resident outside the 48-hour window holds the rows
        behind it in that chat too (delivery keeps a chat's order)."""
        later = self.clock.now() + timedelta(hours=1)
        held = select(Outbox.chat_id).where(Outbox.channel == self.resident_channel, Outbox.status == "pending",
                                            Outbox.not_before > later)
        return (Outbox.channel.in_([self.channel, self.resident_channel]), Outbox.not_before <= later,
                ~and_(Outbox.channel == self.resident_channel, Outbox.chat_id.in_(held)))

    async def quiet(self) -> bool:
        """Nothing due is waiting; what is held for a resident outside the 48-hour window is not due."""
        async with self.sm() as s:
            n = await s.execute(select(func.count()).select_from(Outbox).where(
                Outbox.status.in_(["pending", "sending"]), *self._open_chats()))
            return n.scalar_one() == 0

    async def settle(self) -> None:
        for _ in range(3):
            await self.door.idle()
            await self.runtime.idle()
            await self.delivery.drain()
            for _ in range(5):
                async with self.sm() as s:
                    held = (await s.execute(select(func.min(Outbox.not_before)).where(
                        Outbox.status == "pending", *self._open_chats()))).scalar()
                if held is None:
                    break
                wait = (held - self.clock.now()).total_seconds()
                if wait > 0:  # a rate-limit hold: let the time pass
                    self.clock.advance(wait + 0.01)
                    self.waited += wait
                await self.delivery.drain()
        assert await self.quiet()

    # ------------------------------------------------------------------ residents' messages

    async def _deliver(self, who: str, message, times: int) -> None:
        """Hands a resident's message to the door's fake `times` times (a replay after the first)."""
        raise NotImplementedError

    def _text(self, who: str, text: str, menu_id: str | None = None): ...

    def _location(self, who: str, lat: float, lon: float): ...

    def _menu(self, who: str, label: str) -> str: ...

    async def _resident(self, who: str, message, times: int = 1) -> Reply | None:
        before = len(self.office.handled)
        await self._deliver(who, message, times)
        self.last_message[who] = message
        await self.settle()
        new = self.office.handled[before:]
        return new[0][1] if new else None

    async def say(self, who: str, text: str, *, times: int = 1) -> None:
        if who in self.staff:
            return await super().say(who, text, times=times)
        await self._resident(who, self._text(who, text), times)

    async def location(self, who: str, lat: float, lon: float) -> None:
        if who in self.staff:
            return await super().location(who, lat, lon)
        from workflows.geo import from_wgs84

        await self._resident(who, self._location(who, *from_wgs84(lat, lon, "gcj02")))  # as a WeChat client reports

    async def press(self, who: str, label: str, *, group: str | None = None, seen_by: str | None = None,
                    times: int = 1) -> str | None:
        if who in self.staff:
            return await super().press(who, label, group=group, seen_by=seen_by, times=times)
        assert group is None and seen_by in (None, who), f"a resident writes only privately to the {self.door_label}"
        before = len(self.private_texts(who))
        reply = await self._resident(who, self._text(who, label, self._menu(who, label)), times)
        if reply is None or not reply.alert:
            return None
        shown = self.private_texts(who)[before:]  # no pop-ups: the answer arrives as a message
        assert any(reply.alert in t for t in shown), (reply.alert, shown)
        return reply.alert

    # ------------------------------------------------------------------ what WeChat received

    def _resident_texts(self, who: str) -> list[str]: ...

    def private_texts(self, who: str) -> list[str]:
        return super().private_texts(who) if who in self.staff else self._resident_texts(who)


class WeChatKfDriver(ResidentDoorDriver):
    """微信客服: one fake WeChat Work server that also speaks `kf/sync_msg` and `kf/send_msg`.

    A resident's message is queued on the fake and announced by an encrypted `kf_msg_or_event`
    callback; the runtime pulls it with sync_msg. "The same event twice" is the callback replayed
    and the same msgid returned twice by sync_msg (as after a cursor that was not saved); a
    repeat after a restart is that msgid once more. Buttons reach residents as msgmenu items,
    pressed by writing back the item's id."""

    name = "wechat_kf"
    resident_channel = "wechat_kf"
    door_label = "微信客服"

    def __init__(self, sessionmaker) -> None:
        super().__init__(sessionmaker)
        self.kf_crypto = WeChatCrypto(KF_TOKEN, AES_KEY, CORP_ID)
        self.kf_last: dict[str, dict] = {}  # who -> their last queued sync_msg message

    @property
    def kf(self):
        return self.door

    @property
    def kf_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/wechat/kf/callback"

    async def _start_fakes(self) -> None:
        from ..fakes.wechat_kf import FakeWeChatKf

        if self.api is None:
            self.api = await FakeWeChatKf().start()

    def _door_settings(self) -> dict:
        from ..fakes.wechat_kf import KF_SECRET, OPEN_KFID

        return {"wechat_kf_secret": KF_SECRET, "wechat_kf_token": KF_TOKEN, "wechat_kf_aes_key": AES_KEY,
                "wechat_kf_open_kfid": OPEN_KFID}

    def userid(self, who: str) -> str:
        if who not in self.userids:
            self.userids[who] = who.lower() if who in self.staff else f"wmRes{next(self._seq)}"
        return self.userids[who]

    async def kf_post(self, token: str) -> None:
        from ..fakes.wechat_kf import OPEN_KFID

        plain = (f"<xml><ToUserName>{cdata(CORP_ID)}</ToUserName><CreateTime>{int(time.time())}</CreateTime>"
                 f"<MsgType>{cdata('event')}</MsgType><Event>{cdata('kf_msg_or_event')}</Event>"
                 f"<Token>{cdata(token)}</Token><OpenKfId>{cdata(OPEN_KFID)}</OpenKfId></xml>")
        nonce, ts = f"n{next(self._seq)}", str(int(time.time()))
        d = xmltodict.parse(self.kf_crypto.encrypt_message(plain, nonce, ts))["xml"]
        body = f"<xml><ToUserName>{cdata(CORP_ID)}</ToUserName><Encrypt>{cdata(d['Encrypt'])}</Encrypt></xml>"
        params = {"msg_signature": d["MsgSignature"], "timestamp": ts, "nonce": nonce}
        async with aiohttp.ClientSession() as http, http.post(self.kf_url, params=params, data=body.encode()) as r:
            await r.read()
            assert r.status == 200, r.status

    async def _deliver(self, who: str, message, times: int) -> None:
        msgtype, body = message
        token = self.api.resident_writes(self.userid(who), msgtype, body)
        msg = self.api.messages[-1]
        for _ in range(times - 1):  # the very same message (msgid) again, and the callback replayed
            self.api.messages.append(dict(msg))
        for _ in range(times):
            await self.kf_post(token)
        self.kf_last[who] = msg

    def _text(self, who: str, text: str, menu_id: str | None = None):
        return "text", {"content": text, **({"menu_id": menu_id} if menu_id else {})}

    def _location(self, who: str, lat: float, lon: float):
        return "location", {"latitude": lat, "longitude": lon, "name": "现场", "address": ""}

    def _menu(self, who: str, label: str) -> str:
        userid = self.userid(who)
        for call in reversed(self.api.sent_to(userid)):
            for item in call.body.get("msgmenu", {}).get("list", []):
                if item.get("click", {}).get("content") == label:
                    return item["click"]["id"]
        raise AssertionError(f"no menu item {label!r} sent to {userid}")

    async def repeat_last(self, who: str) -> None:
        if who in self.staff:
            return await super().repeat_last(who)
        # sync_msg hands out the same msgid once more (a cursor that was not saved), announced anew
        before = len(self.office.handled)
        self.api.messages.append(dict(self.kf_last[who]))
        token = f"ENCREPEAT{next(self._seq)}"
        self.api.tokens.add(token)
        await self.kf_post(token)
        await self.settle()
        assert len(self.office.handled) > before, "the repeated message did not reach the office"

    def _resident_texts(self, who: str) -> list[str]:
        out = []
        for c in self.api.sent_to(self.userid(who)):
            b = c.body
            if b["msgtype"] == "text":
                out.append(b["text"]["content"])
            elif b["msgtype"] == "msgmenu":
                out.append(b["msgmenu"].get("head_content", ""))
        return out

    def fail_next_send(self, who: str) -> None:
        if who in self.staff:
            return super().fail_next_send(who)
        self.api.fail_next("kf/send_msg", 45009, "api freq out of limit")

    def send_attempts(self, who: str) -> list[bool]:
        if who in self.staff:
            return super().send_attempts(who)
        return [c.ok for c in self.api.calls_of("kf/send_msg") if c.body.get("touser") == self.userid(who)]


# ====================================================================== 公众号 (Official Account)


class WeChatMpDriver(ResidentDoorDriver):
    """The office's 公众号: a fake WeChat Work server for the staff and a fake 公众号 platform
    (tests/fakes/wechat_mp) that posts the residents' messages in safe mode (encrypted with
    wechatpy's crypto) and takes the 客服消息 we send. Buttons reach residents as msgmenu items,
    pressed by the text WeChat sends back with the item's bizmsgmenuid. "The same event twice" is
    the very same callback (MsgId) posted twice, as WeChat retries an answer it did not get within
    5 seconds."""

    name = "wechat_mp"
    resident_channel = "wechat_mp"
    door_label = "公众号"

    def __init__(self, sessionmaker) -> None:
        super().__init__(sessionmaker)
        self.mp_api = None  # the fake 公众号 platform
        self.mp_settings: dict = {}  # more WECHAT_MP_* settings for the next start (tests/test_wechat_mp.py)

    @property
    def mp(self):
        return self.door

    @property
    def mp_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/wechat/mp/callback"

    async def _start_fakes(self) -> None:
        from ..fakes.wechat_mp import FakeOfficialAccount

        if self.api is None:
            self.api = await FakeWeCom().start()
            self.mp_api = await FakeOfficialAccount().start()

    def _door_settings(self) -> dict:
        from ..fakes.wechat_mp import APP_ID, APP_SECRET, MP_AES_KEY, MP_TOKEN

        return {"wechat_mp_app_id": APP_ID, "wechat_mp_secret": APP_SECRET, "wechat_mp_token": MP_TOKEN,
                "wechat_mp_aes_key": MP_AES_KEY, "wechat_mp_api_base_url": self.mp_api.base_url,
                **self.mp_settings}

    async def close(self) -> None:
        await super().close()
        if self.mp_api is not None:
            await self.mp_api.stop()

    def userid(self, who: str) -> str:
        if who not in self.userids:
            self.userids[who] = who.lower() if who in self.staff else f"oRes{next(self._seq):06d}"
        return self.userids[who]

    async def _deliver(self, who: str, message, times: int) -> None:
        for _ in range(times):  # WeChat posts the very same callback again when it got no answer in time
            status, answer = await self.mp_api.push(self.mp_url, message)
            assert status == 200 and answer == "success", (status, answer)

    def _text(self, who: str, text: str, menu_id: str | None = None):
        menu = f"<bizmsgmenuid>{cdata(menu_id)}</bizmsgmenuid>" if menu_id else ""
        return self.mp_api.xml(self.userid(who), "text", f"<Content>{cdata(text)}</Content>{menu}")

    def _location(self, who: str, lat: float, lon: float):
        return self.mp_api.xml(self.userid(who), "location", f"<Location_X>{lat}</Location_X>"
                               f"<Location_Y>{lon}</Location_Y><Scale>15</Scale><Label>{cdata('现场')}</Label>")

    def _menu(self, who: str, label: str) -> str:
        openid = self.userid(who)
        for call in reversed(self.mp_api.sent_to(openid)):
            for item in call.body.get("msgmenu", {}).get("list", []):
                if item.get("content") == label:
                    return item["id"]
        raise AssertionError(f"no menu item {label!r} sent to {openid}")

    async def repeat_last(self, who: str) -> None:
        if who in self.staff:
            return await super().repeat_last(who)
        before = len(self.office.handled)
        await self._resident(who, self.last_message[who])
        assert len(self.office.handled) > before, "the repeated message did not reach the office"

    def _resident_texts(self, who: str) -> list[str]:
        return self.mp_api.texts_to(self.userid(who))

    def fail_next_send(self, who: str) -> None:
        if who in self.staff:
            return super().fail_next_send(who)
        self.mp_api.fail_next("message/custom/send", 45009, "api freq out of limit")

    def send_attempts(self, who: str) -> list[bool]:
        if who in self.staff:
            return super().send_attempts(who)
        return [c.ok for c in self.mp_api.calls_of("message/custom/send") if c.body.get("touser") == self.userid(who)]


DRIVERS = {
    "terminal": TerminalDriver,
    "telegram-ptb": lambda sm: TelegramDriver(sm, "ptb"),
    "telegram-aiogram": lambda sm: TelegramDriver(sm, "aiogram"),
    "wecom": WeComDriver,
    "wechat_kf": WeChatKfDriver,
    "wechat_mp": WeChatMpDriver,
}

__all__ = ["DRIVERS", "Driver", "TelegramDriver", "TerminalDriver", "WeChatKfDriver", "WeChatMpDriver",
           "WeComDriver"]
