"""The terminal channel: the same dialogues on stdin/stdout, no account needed anywhere.

Buttons are shown as numbered choices; what goes to a work group or another person is
printed with its target. Lines starting with ':' are shell commands (:help lists them).
"""

from __future__ import annotations

import asyncio
import sys
from typing import TextIO

from sqlalchemy import or_, select

from handlers.events import Inbound, Media
from handlers.office import Office
from workflows.models import Account, GroupBinding, Node, Person

from ..delivery import Delivery
from .base import OutgoingMessage, Sent

NAME = "terminal"

SHELL_HELP = """终端命令 (shell commands):
  数字 N            按下第 N 个按钮 / press button N
  :as 编码或姓名     切换为某位工作人员 / act as a staff member
  :resident 姓名     切换为居民 / act as a resident
  :loc 纬度 经度     发送位置 / send a location
  :photo 文件名      发送照片 / send a photo (:voice, :video likewise)
  :phone 号码        分享自己的手机号 / share your own phone number
  :dm               之后的文字发到私聊 / type into your private chat
  :group 编码        之后的文字发到某个工作群 / type into a node's work group
  :who              当前身份 / who am I
  :quit             退出 / quit
其他文字按消息发送 / anything else is sent as a message."""


class TerminalAdapter:
    name = NAME
    can_edit = True
    windows = ()

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.labels: dict[str, str] = {}  # chat id -> how to show it
        self.buttons: list[tuple[str, str, bool]] = []  # (token, chat id, is group), numbered from 1
        self.current_chat: str = ""
        self._next_id = 0

    def _print_buttons(self, msg: OutgoingMessage) -> list[str]:
        lines = []
        for row in msg.buttons:
            cells = []
            for b in row:
                self.buttons.append((b["token"], msg.chat_id, msg.is_group))
                cells.append(f"[{len(self.buttons)}] {b['label']}")
            lines.append("    " + "  ".join(cells))
        return lines

    def _show(self, msg: OutgoingMessage, prefix: str) -> None:
        target = msg.chat_id == self.current_chat
        head = "bot>" if target else f"[→ {self.labels.get(msg.chat_id, msg.chat_id)}]"
        lines = [f"{head} {prefix}{line}" if n == 0 else f"     {line}" for n, line in enumerate(msg.text.splitlines() or [""])]
        for m in msg.media:
            lines.append(f"     ({m.get('kind', 'file')}: {m.get('name') or m.get('ref')})")
        lines.extend(self._print_buttons(msg))
        print("\n".join(lines), file=self.out, flush=True)

    async def send(self, msg: OutgoingMessage) -> Sent:
        self._next_id += 1
        self._show(msg, "")
        return Sent(str(self._next_id))

    async def edit(self, msg: OutgoingMessage, message_id: str) -> None:
        self._show(msg, "(更新) ")


class TerminalShell:
    def __init__(self, office: Office, delivery: Delivery, adapter: TerminalAdapter,
                 stdin: TextIO | None = None, out: TextIO | None = None) -> None:
        self.office = office
        self.delivery = delivery
        self.adapter = adapter
        self.stdin = stdin or sys.stdin
        self.out = out or sys.stdout
        self.user_id = ""
        self.user_name = ""
        self.typing_chat: tuple[str, bool] | None = None  # where typed text goes, if not the private chat
        self._seq = 0

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
                self.adapter.labels[chat] = f"{node.name}工作群"
                if node.id not in bound:
                    session.add(GroupBinding(node_id=node.id, channel=NAME, chat_id=chat, title=node.name,
                                             status="active", bound_at=self.office.clock.now()))
            staff = list((await session.execute(select(Person).where(Person.code.is_not(None)))).scalars())
            have = set((await session.execute(
                select(Account.person_id).where(Account.channel == NAME))).scalars())
            for p in staff:
                self.adapter.labels[f"dm:{p.code}"] = f"私聊 {p.name}"
                if p.id not in have:
                    session.add(Account(channel=NAME, external_id=p.code, chat_id=f"dm:{p.code}", person_id=p.id,
                                        display_name=p.name, created_at=self.office.clock.now()))
            for a in (await session.execute(select(Account).where(Account.channel == NAME))).scalars():
                if a.chat_id and a.chat_id not in self.adapter.labels:
                    self.adapter.labels[a.chat_id] = f"私聊 {a.display_name or a.external_id}"

    async def act_as(self, who: str) -> bool:
        async with self.office.sessionmaker() as session:
            person = (await session.execute(
                select(Person).where(Person.code.is_not(None), or_(Person.code == who, Person.name == who))
                .order_by(Person.id)
            )).scalars().first()
        if person is None:
            self.say(f"找不到工作人员「{who}」。/ No staff member '{who}'.")
            return False
        self.user_id, self.user_name = person.code, person.name
        self.adapter.current_chat = f"dm:{person.code}"
        self.typing_chat = None
        self.say(f"—— 现在的身份：{person.name}（{person.code}）——")
        return True

    def act_as_resident(self, name: str) -> None:
        self.user_id, self.user_name = f"resident:{name}", name
        self.adapter.current_chat = f"dm:resident:{name}"
        self.typing_chat = None
        self.adapter.labels[self.adapter.current_chat] = f"私聊 居民{name}"
        self.say(f"—— 现在的身份：居民 {name} ——")

    async def send(self, **kw) -> None:
        self._seq += 1
        default_chat, default_group = self.typing_chat or (self.adapter.current_chat, False)
        chat = kw.pop("chat_id", default_chat)
        is_group = kw.pop("is_group", default_group)
        inbound = Inbound(channel=NAME, chat_id=chat, user_id=self.user_id, user_name=self.user_name,
                          is_group=is_group, event_id=None, **kw)
        reply = await self.office.handle(inbound)
        await self.delivery.drain()
        if reply.alert:
            self.say(f"(提示) {reply.alert}")

    async def handle_line(self, line: str) -> bool:
        """Returns False when the shell should stop."""
        line = line.strip()
        if not line:
            return True
        if line.isdigit():
            n = int(line)
            if not 1 <= n <= len(self.adapter.buttons):
                self.say("没有这个编号的按钮。/ No such button.")
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
                self.act_as_resident(arg or "居民")
            elif cmd == "dm":
                self.typing_chat = None
            elif cmd == "group":
                self.typing_chat = (f"group:{arg}", True)
            elif cmd == "who":
                self.say(f"{self.user_name} ({self.user_id})")
            elif cmd == "loc":
                try:
                    lat, lon = (float(x) for x in arg.replace(",", " ").split())
                except ValueError:
                    self.say("用法 / usage: :loc 30.28 120.12")
                    return True
                await self.send(location=(lat, lon))
            elif cmd in ("photo", "voice", "video"):
                await self.send(media=[Media(kind=cmd, ref=arg or f"{cmd}-{self._seq}", channel=NAME, name=arg or None)])
            elif cmd == "phone":
                await self.send(contact_phone=arg, contact_is_own=True)
            else:
                self.say(SHELL_HELP)
            return True
        if not self.user_id:
            self.say("请先选择身份：:as 编码 或 :resident 姓名")
            return True
        await self.send(text=line)
        return True

    async def morning_sweeps(self) -> None:
        """Today's care-visit lists (the terminal runs no scheduler): a demo worker sees the reminder."""
        from workflows.routines.sweeps import run_sweep

        o = self.office
        await run_sweep(o.sessionmaker, "care_due", clock=o.clock, channels=frozenset({NAME}), language=o.language,
                        timezone=o.timezone)

    async def run(self) -> None:
        await self.prepare()
        await self.morning_sweeps()
        await self.delivery.drain()
        self.say(SHELL_HELP)
        loop = asyncio.get_running_loop()
        while True:
            where = f"@{self.adapter.labels.get(self.typing_chat[0], self.typing_chat[0])}" if self.typing_chat else ""
            prompt = f"{self.user_name or '?'}{where}> "
            print(prompt, end="", file=self.out, flush=True)
            line = await loop.run_in_executor(None, self.stdin.readline)
            if not line:
                break
            if not await self.handle_line(line):
                break
