"""The terminal channel: the same dialogues on stdin/stdout, no account needed anywhere.

Buttons are shown as numbered choices; what goes to a work group or another person is
printed with its target. Lines starting with ':' are shell commands (:help lists them).
"""

from __future__ import annotations

import asyncio
import contextlib
import mimetypes
import signal
import sys
import threading
from datetime import datetime
from pathlib import Path
from typing import TextIO

from sqlalchemy import or_, select

from handlers.events import Inbound, Media
from handlers.office import Office
from workflows.i18n import T
from workflows.models import Account, GroupBinding, Node, Person

from ..delivery import Delivery
from .base import OutgoingMessage, PermanentError, Sent

NAME = "terminal"
PHONE_DIGITS = 5  # a longer number than any button's is typed text: a phone number, say

SHELL_HELP = """终端命令：
  数字 N            按下第 N 个按钮
  :as 编码或姓名     切换为某位工作人员
  :resident 姓名     切换为居民
  :loc 纬度 经度     发送位置
  :photo 文件路径    发送照片，存入媒体库（:voice、:video 同理）
  :phone 号码        分享自己的手机号
  :dm               之后的文字发到私聊
  :group 编码        之后的文字发到某个工作群
  :time 日期 时间    把时钟拨到某一时刻，如 :time 2026-11-24 08:50
  :who              当前身份
  :quit             退出（或按 Ctrl-C）
其他文字按消息发送。"""


class TerminalAdapter:
    name = NAME
    can_edit = True
    windows = ()
    ref_scope = "local"
    ref_lifetime = None

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.labels: dict[str, str] = {}  # chat id -> how to show it
        self.buttons: list[tuple[str, str, bool]] = []  # (token, chat id, is group), numbered from 1
        self.current_chat: str = ""
        self.t = T(None)  # the shell sets the office's language
        self.shown: list[tuple[str, str]] = []  # (chat id, text) of everything printed, in order
        self._next_id = 0
        self.media = None  # bot.media.MediaLibrary, set by the runtime: shows stored files' paths

    def _print_buttons(self, msg: OutgoingMessage) -> list[str]:
        lines = []
        for row in msg.buttons:
            cells = []
            for b in row:
                self.buttons.append((b["token"], msg.chat_id, msg.is_group))
                cells.append(f"[{len(self.buttons)}] {b['label']}")
            lines.append("    " + "  ".join(cells))
        return lines

    async def _paths(self, msg: OutgoingMessage) -> list[str | None]:
        """Where each attachment is in the media store (None: not fetched, or inline)."""
        if self.media is None:
            return [None] * len(msg.media)
        return [await self.media.where(m) for m in msg.media]

    def _show(self, msg: OutgoingMessage, prefix: str, paths: list[str | None] | None = None) -> None:
        target = msg.chat_id == self.current_chat
        head = "bot>" if target else f"[→ {self.labels.get(msg.chat_id, msg.chat_id)}]"
        lines = [f"{head} {prefix}{line}" if n == 0 else f"     {line}" for n, line in enumerate(msg.text.splitlines() or [""])]
        for m, path in zip(msg.media, paths or [None] * len(msg.media), strict=False):
            lines.append(f"     ({m.get('kind', 'file')}: {path or m.get('name') or m.get('ref')})")
        lines.extend(self._print_buttons(msg))
        self.shown.append((msg.chat_id, msg.text))
        print("\n".join(lines), file=self.out, flush=True)

    async def send(self, msg: OutgoingMessage) -> Sent:
        self._next_id += 1
        self._show(msg, "", await self._paths(msg))
        return Sent(str(self._next_id))

    async def edit(self, msg: OutgoingMessage, message_id: str) -> None:
        self._show(msg, self.t("(更新) "), await self._paths(msg))

    async def download(self, ref: str) -> tuple[bytes, str | None, str | None]:
        """`:photo PATH` names a file on this machine: the media fetcher stores it."""
        path = Path(ref).expanduser()
        if not path.is_file():
            raise PermanentError(f"no such file: {ref}")
        return await asyncio.to_thread(path.read_bytes), mimetypes.guess_type(path.name)[0], path.name


class TerminalShell:
    def __init__(self, office: Office, delivery: Delivery, adapter: TerminalAdapter,
                 stdin: TextIO | None = None, out: TextIO | None = None, scheduler=None) -> None:
        self.office = office
        self.delivery = delivery
        self.adapter = adapter
        self.stdin = stdin or sys.stdin
        self.out = out or sys.stdout
        self.user_id = ""
        self.user_name = ""
        self.typing_chat: tuple[str, bool] | None = None  # where typed text goes, if not the private chat
        self.scheduler = scheduler  # bot.scheduler.Scheduler, when the trial runs the sweeps
        self.opening_time: datetime | None = None  # where the trial's clock was started, if not now
        self.fetcher = None  # bot.media_fetch.MediaFetcher: stores the files sent with :photo PATH
        self._seq = 0
        self.t = T(office.language)
        adapter.t = self.t
        self._drain_lock = asyncio.Lock()  # the shell and the scheduler's pump never send the same row
        self._prompt_shown = False

    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    async def prepare(self) -> None:
        """Every node gets a terminal 'group' and every staff member a terminal account."""
        async with self.office.sessionmaker() as session, session.begin():
            nodes = list((await session.execute(select(Node))).scalars())
            bound = set((await session.execute(
                select(GroupBinding.node_id).where(GroupBinding.channel == NAME))).scalars())
            for node in nodes:
                chat = f"group:{node.code}"
                self.adapter.labels[chat] = self.t("{node}工作群", node=node.name)
                if node.id not in bound:
                    session.add(GroupBinding(node_id=node.id, channel=NAME, chat_id=chat, title=node.name,
                                             status="active", bound_at=self.office.clock.now()))
            staff = list((await session.execute(select(Person).where(Person.code.is_not(None)))).scalars())
            have = set((await session.execute(
                select(Account.person_id).where(Account.channel == NAME))).scalars())
            for p in staff:
                self.adapter.labels[f"dm:{p.code}"] = self.t("私聊 {name}", name=p.name)
                if p.id not in have:
                    session.add(Account(channel=NAME, external_id=p.code, chat_id=f"dm:{p.code}", person_id=p.id,
                                        display_name=p.name, created_at=self.office.clock.now()))
            for a in (await session.execute(select(Account).where(Account.channel == NAME))).scalars():
                if a.chat_id and a.chat_id not in self.adapter.labels:
                    self.adapter.labels[a.chat_id] = self.t("私聊 {name}", name=a.display_name or a.external_id)

    async def act_as(self, who: str) -> bool:
        async with self.office.sessionmaker() as session:
            person = (await session.execute(
                select(Person).where(Person.code.is_not(None), or_(Person.code == who, Person.name == who))
                .order_by(Person.id)
            )).scalars().first()
        if person is None:
            self.say(self.t("找不到工作人员「{who}」。", who=who))
            return False
        self.user_id, self.user_name = person.code, person.name
        self.adapter.current_chat = f"dm:{person.code}"
        self.typing_chat = None
        self.say(self.t("—— 现在的身份：{name}（{code}）——", name=person.name, code=person.code))
        return True

    def act_as_resident(self, name: str) -> None:
        self.user_id, self.user_name = f"resident:{name}", name
        self.adapter.current_chat = f"dm:resident:{name}"
        self.typing_chat = None
        self.adapter.labels[self.adapter.current_chat] = self.t("私聊 居民{name}", name=name)
        self.say(self.t("—— 现在的身份：居民 {name} ——", name=name))

    async def send(self, **kw) -> None:
        self._seq += 1
        default_chat, default_group = self.typing_chat or (self.adapter.current_chat, False)
        chat = kw.pop("chat_id", default_chat)
        is_group = kw.pop("is_group", default_group)
        inbound = Inbound(channel=NAME, chat_id=chat, user_id=self.user_id, user_name=self.user_name,
                          is_group=is_group, event_id=None, **kw)
        mark = len(self.adapter.shown)
        reply = await self.office.handle(inbound)
        if self.fetcher is not None:  # a local file given with :photo goes into the media store
            await self.fetcher.fetch_due()
        await self.drain()
        # a refusal of a private button is also written into the chat: say it once, not twice
        if reply.alert and not reply.alert_in_chat and (chat, reply.alert) not in self.adapter.shown[mark:]:
            self.say(self.t("(提示) {text}", text=reply.alert))

    async def drain(self) -> None:
        async with self._drain_lock:
            await self.delivery.drain()

    async def handle_line(self, line: str) -> bool:
        """Returns False when the shell should stop."""
        line = line.strip()
        if not line:
            return True
        if line.isdigit() and not (len(line) >= PHONE_DIGITS and int(line) > len(self.adapter.buttons)):
            n = int(line)
            if not 1 <= n <= len(self.adapter.buttons):
                self.say(self.t("没有这个编号的按钮。"))
                return True
            token, chat, is_group = self.adapter.buttons[n - 1]
            # a button pressed in a group: what is typed next (a reason, say) belongs there too
            self.typing_chat = (chat, True) if is_group else None
            await self.send(kind="button", button=token, chat_id=chat, is_group=is_group)
            return True
        if line.startswith(":"):
            cmd, _, arg = line[1:].partition(" ")
            arg = arg.strip()
            if cmd in ("quit", "q", "exit"):
                return False
            if cmd == "as":
                await self.act_as(arg)
            elif cmd == "resident":
                self.act_as_resident(arg or self.t("居民"))
            elif cmd == "dm":
                self.typing_chat = None
            elif cmd == "group":
                self.typing_chat = (f"group:{arg}", True)
            elif cmd == "time":
                await self.set_time(arg)
            elif cmd == "who":
                self.say(f"{self.user_name} ({self.user_id})")
            elif cmd == "loc":
                try:
                    lat, lon = (float(x) for x in arg.replace(",", " ").split())
                except ValueError:
                    self.say(self.t("用法：:loc 30.28 120.12"))
                    return True
                await self.send(location=(lat, lon))
            elif cmd in ("photo", "voice", "video"):
                await self.send(media=[Media(kind=cmd, ref=arg or f"{cmd}-{self._seq}", channel=NAME, name=arg or None)])
            elif cmd == "phone":
                await self.send(contact_phone=arg, contact_is_own=True)
            else:
                self.say(self.t(SHELL_HELP))
            return True
        if not self.user_id:
            self.say(self.t("请先选择身份：:as 编码 或 :resident 姓名"))
            return True
        await self.send(text=line)
        return True

    async def set_time(self, arg: str) -> None:
        """Moves the trial's clock and runs every sweep at once, as the scheduler would then."""
        from ..jobs_cli import format_local, parse_at

        clock = self.office.clock
        tz = self.office.timezone
        if not arg:
            self.say(self.t("现在是 {at}", at=format_local(clock.now(), tz)))
            return
        if not hasattr(clock, "set"):
            self.say(self.t("这个终端的时钟不能拨动。"))
            return
        try:
            at = parse_at(arg, tz)
        except ValueError:
            self.say(self.t("读不懂时间「{text}」。请写成 2026-11-24 08:50（本地时间），或带时区的 ISO 8601："
                            "2026-11-24T08:50:00+08:00。", text=arg))
            return
        clock.set(at)
        self.say(self.t("—— 时钟已拨到 {at} ——", at=format_local(clock.now(), tz)))
        if self.scheduler is not None:
            await self.scheduler.run_all()
        await self.drain()

    async def pump(self) -> None:
        """Sends what the scheduler's sweeps wrote while nobody typed, then shows the prompt again."""
        while True:
            await self.delivery._wake.wait()
            self.delivery._wake.clear()
            async with self._drain_lock:
                before = len(self.adapter.shown)
                await self.delivery.drain()
            if len(self.adapter.shown) > before and self._prompt_shown:
                self._prompt()

    def _prompt(self) -> None:
        where = f"@{self.adapter.labels.get(self.typing_chat[0], self.typing_chat[0])}" if self.typing_chat else ""
        print(f"{self.user_name or '?'}{where}> ", end="", file=self.out, flush=True)
        self._prompt_shown = True

    def _start_reader(self, loop: asyncio.AbstractEventLoop) -> asyncio.Queue[str]:
        # a daemon thread, not the default executor: Ctrl-C must not wait for a blocked readline
        lines: asyncio.Queue[str] = asyncio.Queue()

        def read() -> None:
            while True:
                try:
                    line = self.stdin.readline()
                except (OSError, ValueError):
                    line = ""
                loop.call_soon_threadsafe(lines.put_nowait, line)
                if not line:
                    return

        threading.Thread(target=read, name="terminal-stdin", daemon=True).start()
        return lines

    async def run(self) -> None:
        await self.prepare()
        if self.opening_time is not None:
            from ..jobs_cli import format_local

            self.say(self.t("—— 试用时钟从 {at} 开始，输入 :time 可以拨动 ——",
                            at=format_local(self.opening_time, self.office.timezone)))
        if self.scheduler is not None:
            await self.scheduler.run_all()  # the catch-up `gridbot run` does at start
        await self.drain()
        self.say(self.t(SHELL_HELP))
        loop = asyncio.get_running_loop()
        lines = self._start_reader(loop)
        stop = asyncio.Event()
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signal.SIGINT, stop.set)
        pump = asyncio.create_task(self.pump())
        stopping = asyncio.create_task(stop.wait())
        try:
            while True:
                self._prompt()
                reading = asyncio.create_task(lines.get())
                await asyncio.wait({reading, stopping}, return_when=asyncio.FIRST_COMPLETED)
                if not reading.done():
                    reading.cancel()
                    self.say("")
                    break
                self._prompt_shown = False
                line = reading.result()
                if not line or not await self.handle_line(line):
                    break
        finally:
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(signal.SIGINT)
            for task in (pump, stopping):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
