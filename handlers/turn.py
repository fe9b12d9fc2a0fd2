"""One inbound event being handled: who sent it, in which language, and how to answer."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from workflows.context import Ctx
from workflows.i18n import T
from workflows.models import Conversation, Person
from workflows.outbox import Button, Msg, button, to_chat

from .events import Inbound, Reply


@dataclass
class Turn:
    ctx: Ctx
    inbound: Inbound
    person: Person | None
    t: T
    reply: Reply = field(default_factory=Reply)
    typed: bool = False  # a button label typed as text (router): answers go into the chat, no pop-up
    _conv: Conversation | None = None
    _conv_loaded: bool = False

    @property
    def session(self):
        return self.ctx.session

    @property
    def text(self) -> str:
        return (self.inbound.text or "").strip()

    async def say(self, text: str, buttons: list[list[Button]] | None = None, media: list[dict] | None = None) -> None:
        """Answer in the chat the event came from."""
        await to_chat(self.ctx, self.inbound.channel, self.inbound.chat_id,
                      Msg(text, buttons=buttons or [], media=media or []),
                      is_group=self.inbound.is_group, person_id=self.person.id if self.person else None)

    async def button(self, label: str, action: str, **args: Any) -> Button:
        return await button(self.ctx, self.t(label), action, **args)

    def alert(self, text: str) -> None:
        self.reply.alert = text

    # ---- conversation state, keyed by channel, chat and user

    async def conversation(self) -> Conversation | None:
        if not self._conv_loaded:
            i = self.inbound
            self._conv = (await self.session.execute(
                select(Conversation).where(Conversation.channel == i.channel, Conversation.chat_id == i.chat_id,
                                           Conversation.user_id == i.user_id)
            )).scalar_one_or_none()
            self._conv_loaded = True
        return self._conv

    async def start(self, flow: str, step: str, **data: Any) -> None:
        conv = await self.conversation()
        if conv is None:
            i = self.inbound
            conv = Conversation(channel=i.channel, chat_id=i.chat_id, user_id=i.user_id)
            self.session.add(conv)
            self._conv = conv
        conv.flow, conv.step, conv.data, conv.updated_at = flow, step, dict(data), self.ctx.now()

    async def step(self, step: str, **data: Any) -> None:
        conv = await self.conversation()
        assert conv is not None, "step() outside a flow"
        conv.step = step
        conv.data = {**conv.data, **data}  # a new dict, so the JSON column sees the change
        conv.updated_at = self.ctx.now()

    async def finish(self) -> None:
        conv = await self.conversation()
        if conv is not None:
            await self.session.delete(conv)
            self._conv = None
