"""The Telegram channel on aiogram 3 (`TELEGRAM_FRAMEWORK=aiogram`).

Same behaviour as the python-telegram-bot channel (`telegram_ptb`): the same Update → Inbound
rules (`telegram_aiogram_convert`), the same adapter (`telegram_aiogram_send`), the same command
menus, long polling or a webhook that refuses requests without the secret.

For a bot that already runs on aiogram, `gridbot_router(office)` is an ordinary aiogram Router
to include in its Dispatcher, and `setup_gridbot(dp, settings)` also opens gridbot's database
and runs its delivery worker with the Dispatcher's startup and shutdown; see docs/aiogram.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from aiogram import Bot, Dispatcher, Router
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import PRODUCTION, TelegramAPIServer
from aiogram.exceptions import TelegramAPIError
from aiogram.types import (
    BotCommand,
    BotCommandScopeAllGroupChats,
    BotCommandScopeAllPrivateChats,
    BotCommandScopeChat,
    CallbackQuery,
    ChatMemberUpdated,
    Message,
    Update,
)

from handlers.office import Office

from ..settings import ConfigError, Settings
from .telegram_aiogram_convert import to_inbound
from .telegram_aiogram_send import AiogramAdapter
from .telegram_inbox import Intake
from .telegram_menu import chat_menus, command_menus
from .telegram_send import NAME

log = logging.getLogger(__name__)

ALLOWED_UPDATES = ["message", "edited_message", "callback_query", "my_chat_member"]
POLL_TIMEOUT = 30  # seconds a getUpdates long poll stays open when nothing happens
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"

__all__ = ["AiogramAdapter", "AiogramChannel", "GridbotRouter", "api_server", "build", "gridbot_router",
           "set_commands", "setup_gridbot"]


def api_server(base_url: str | None) -> TelegramAPIServer:
    """TELEGRAM_API_BASE_URL in python-telegram-bot's form (http://host:8081/bot) or bare (http://host:8081)."""
    if not base_url:
        return PRODUCTION
    base = base_url.rstrip("/")
    if base.endswith("/bot"):
        base = base[: -len("/bot")]
    return TelegramAPIServer.from_base(base)


# ---------------------------------------------------------------- the Router


class GridbotRouter(Router):
    """gridbot's handlers: every message, edit, button press and change of the bot's membership
    that reaches this router goes to the office as an `Inbound`.

    The office's work for an update runs in a task of its own, so stopping the Dispatcher while
    an update is being handled does not cut its transaction in half; `drain()` waits for those.
    """

    def __init__(self, office: Office | Callable[[], Office], *, name: str = "gridbot") -> None:
        super().__init__(name=name)
        self._office = office
        self._inflight: set[asyncio.Task] = set()
        self._locks: dict[str, asyncio.Lock] = {}
        self._waiting: dict[str, int] = {}
        self.message.register(self._on_message)
        self.edited_message.register(self._on_message)
        self.callback_query.register(self._on_button)
        self.my_chat_member.register(self._on_membership)

    @property
    def office(self) -> Office:
        return self._office if isinstance(self._office, Office) else self._office()

    async def drain(self) -> None:
        while self._inflight:
            await asyncio.gather(*list(self._inflight), return_exceptions=True)

    async def _run(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)
        await asyncio.shield(task)

    @contextlib.asynccontextmanager
    async def _chat_lock(self, chat_id: str):
        # a webhook may deliver several updates at once: one chat's updates still go one by one
        lock = self._locks.setdefault(chat_id, asyncio.Lock())
        self._waiting[chat_id] = self._waiting.get(chat_id, 0) + 1
        try:
            async with lock:
                yield
        finally:
            self._waiting[chat_id] -= 1
            if not self._waiting[chat_id]:
                del self._waiting[chat_id], self._locks[chat_id]

    async def _handle(self, update: Update, query: CallbackQuery | None = None) -> None:
        alert = None
        try:
            inbound = to_inbound(update)
            if inbound is not None:
                async with self._chat_lock(inbound.chat_id):
                    reply = await self.office.handle(inbound)
                alert = None if reply.alert_in_chat else reply.alert  # said once: in the chat, no pop-up
                if reply.menu_changed and not inbound.is_group and update.bot is not None:
                    await set_chat_menus(update.bot, self.office, [inbound.chat_id])
        finally:
            if query is not None:
                # always answer, or the person's client shows a spinner for many seconds
                try:
                    await query.answer(text=(alert or "")[:200] or None, show_alert=bool(alert))
                except TelegramAPIError as e:  # too old, or a network hiccup: nothing to undo
                    log.info("telegram: answering callback query failed: %s", e)

    # aiogram hands each handler the event; the Update (and its update_id) comes as `event_update`
    async def _on_message(self, message: Message, event_update: Update) -> None:
        await self._run(self._handle(event_update))

    async def _on_button(self, query: CallbackQuery, event_update: Update) -> None:
        await self._run(self._handle(event_update, query))

    async def _on_membership(self, change: ChatMemberUpdated, event_update: Update) -> None:
        await self._run(self._handle(event_update))


def gridbot_router(office: Office | Callable[[], Office], *, name: str = "gridbot") -> GridbotRouter:
    """gridbot as an aiogram Router, to include in a Dispatcher after your own routers
    (it takes everything that reaches it). `office` may be a callable, for an Office made at startup."""
    return GridbotRouter(office, name=name)


# ---------------------------------------------------------------- the menu


async def set_commands(bot: Bot) -> None:
    """The command menu, in Chinese by default and in English for English-language clients."""
    scopes = {"private": BotCommandScopeAllPrivateChats(), "group": BotCommandScopeAllGroupChats()}
    try:
        for (where, language), commands in command_menus().items():
            await bot.set_my_commands([BotCommand(command=name, description=summary) for name, summary in commands],
                                      scope=scopes[where], language_code=language)
    except TelegramAPIError:
        # a missing menu is cosmetic: people can still type commands
        log.warning("telegram: setting the command menu failed", exc_info=True)


async def set_chat_menus(bot: Bot, office: Office, chat_ids: list[str] | None = None) -> None:
    """Each linked staff member's private chat gets a menu of their own commands."""
    try:
        for chat_id, commands in await chat_menus(office.sessionmaker, office.language, chat_ids):
            await bot.set_my_commands([BotCommand(command=name, description=summary) for name, summary in commands],
                                      scope=BotCommandScopeChat(chat_id=int(chat_id)))
    except (TelegramAPIError, ValueError):
        log.warning("telegram: setting the staff command menus failed", exc_info=True)


# ---------------------------------------------------------------- the runtime


class AiogramChannel:
    """The `telegram` channel on aiogram: long polling, or a webhook when TELEGRAM_WEBHOOK_URL is set."""

    name = NAME

    def __init__(self, settings: Settings, bot: Bot, *, poll_timeout: int = POLL_TIMEOUT) -> None:
        self.settings = settings
        self.bot = bot
        self.adapter = AiogramAdapter(bot)
        self.poll_timeout = poll_timeout
        self.office: Office | None = None
        self.dispatcher = Dispatcher()
        self.router = gridbot_router(self._get_office)
        self.dispatcher.include_router(self.router)
        self.intake = Intake(settings, poll_timeout=poll_timeout, allowed_updates=list(ALLOWED_UPDATES))

    def _get_office(self) -> Office:
        if self.office is None:
            raise RuntimeError("the telegram channel has not been started")
        return self.office

    def routes(self, server) -> None:
        """The webhook goes on the process's one web server (bot/web.py), before it starts."""
        self.intake.routes(server)

    async def start(self, office: Office) -> None:
        self.office = office
        me = await self.bot.get_me()  # a wrong token or base URL fails here, loudly
        await set_commands(self.bot)
        await set_chat_menus(self.bot, office)
        s = self.settings

        async def set_webhook() -> None:
            await self.bot.set_webhook(s.telegram_webhook_url, secret_token=s.telegram_webhook_secret,
                                       allowed_updates=ALLOWED_UPDATES)

        # the stored JSON is read by aiogram as its polling would, then goes through the Dispatcher
        await self.intake.start(office, lambda raw: Update.model_validate(raw, context={"bot": self.bot}),
                                lambda update: self.dispatcher.feed_update(self.bot, update), set_webhook)
        if s.telegram_webhook_url:
            log.info("telegram (aiogram): webhook at %s", s.telegram_webhook_url)
        else:
            log.info("telegram (aiogram): long polling as @%s", me.username)

    async def stop(self) -> None:
        try:
            # stop taking updates first, then finish the one in hand; stored ones wait for the next start
            await self.intake.stop()
            await self.router.drain()
        finally:
            await self.bot.session.close()


def make_bot(settings: Settings) -> Bot:
    return Bot(settings.telegram_bot_token, session=AiohttpSession(api=api_server(settings.telegram_api_base_url)))


def build(settings: Settings) -> AiogramChannel:
    if settings.telegram_webhook_url and not settings.telegram_webhook_secret:
        # without the secret anyone who finds the URL could post updates "from" a grid leader
        raise ConfigError("TELEGRAM_WEBHOOK_URL needs TELEGRAM_WEBHOOK_SECRET (1-256 of A-Z a-z 0-9 _ -): "
                          "without it anyone who finds the URL could send updates")
    return AiogramChannel(settings, make_bot(settings))


# ---------------------------------------------------------------- mounting into an existing bot


def setup_gridbot(dp: Dispatcher, settings: Settings, *, commands: bool = False,
                  scheduler: bool | None = None) -> GridbotRouter:
    """Add gridbot to an aiogram Dispatcher you already run (call it after including your own routers).

    Includes gridbot's Router and, on the Dispatcher's startup, opens gridbot's database and starts
    its delivery worker (and its scheduler when SCHEDULER_ENABLED) with the bot the Dispatcher runs;
    everything stops on shutdown. `commands=True` also replaces the bot's command menu with gridbot's.
    """
    from ..app import open_runtime

    state: dict[str, Any] = {}
    router = gridbot_router(lambda: state["rt"].office)
    dp.include_router(router)

    async def on_startup(bot: Bot) -> None:
        from ..app import Services

        rt = await open_runtime(settings, {NAME: AiogramAdapter(bot)}, frozenset({NAME}))
        state["rt"] = rt
        state["services"] = Services(settings, rt, scheduler)
        await state["services"].start()
        if commands:
            await set_commands(bot)

    async def on_shutdown() -> None:
        if "services" not in state:
            return
        await router.drain()
        await state.pop("services").stop()
        state.pop("rt")

    dp.startup.register(on_startup)
    dp.shutdown.register(on_shutdown)
    return router
