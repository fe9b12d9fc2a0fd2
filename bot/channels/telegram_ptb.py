"""The Telegram channel on python-telegram-bot 22: receive updates (long polling or webhook),
hand each to the office as an `Inbound`, answer button presses at once.

Updates come in through our own inbox (`telegram_inbox.Intake`), not PTB's Updater: the Updater
confirms an update to Telegram as soon as it has fetched it, and one update it cannot parse
stops every update behind it. PTB still reads each stored update (`Update.de_json`) and its Bot
answers button presses.

Sending is not done here but by the delivery worker through `TelegramAdapter`, so PTB gets
no rate limiter and no retries of its own: Delivery owns both.
"""

from __future__ import annotations

import logging

from telegram import (
    BotCommand,
    BotCommandScopeAllGroupChats,
    BotCommandScopeAllPrivateChats,
    BotCommandScopeChat,
    Update,
)
from telegram.error import TelegramError
from telegram.ext import Application, ApplicationBuilder, ContextTypes, TypeHandler

from handlers.office import Office

from ..settings import ConfigError, Settings
from .telegram_convert import to_inbound
from .telegram_inbox import Intake
from .telegram_menu import chat_menus, command_menus
from .telegram_send import NAME, TelegramAdapter

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.telegram.org/bot"
ALLOWED_UPDATES = [Update.MESSAGE, Update.EDITED_MESSAGE, Update.CALLBACK_QUERY, Update.MY_CHAT_MEMBER]
POLL_TIMEOUT = 30  # seconds a getUpdates long poll stays open when nothing happens


def file_url(base_url: str) -> str:
    """`…/bot` → `…/file/bot`, the way the official server lays out file downloads."""
    head, sep, tail = base_url.rstrip("/").rpartition("/")
    return f"{head}/file/{tail}" if sep else base_url


class TelegramRuntime:
    name = NAME

    def __init__(self, settings: Settings, application: Application) -> None:
        self.settings = settings
        self.application = application
        self.adapter = TelegramAdapter(application.bot)
        self.office: Office | None = None
        self.intake = Intake(settings, poll_timeout=POLL_TIMEOUT, allowed_updates=list(ALLOWED_UPDATES))

    def routes(self, server) -> None:
        """The webhook goes on the process's one web server (bot/web.py), before it starts."""
        self.intake.routes(server)

    async def start(self, office: Office) -> None:
        self.office = office
        app = self.application
        await app.initialize()  # getMe: a wrong token or base URL fails here, loudly
        await self.set_commands()
        s = self.settings

        async def set_webhook() -> None:
            await app.bot.set_webhook(s.telegram_webhook_url, secret_token=s.telegram_webhook_secret,
                                      allowed_updates=ALLOWED_UPDATES)

        await self.intake.start(office, lambda raw: Update.de_json(raw, app.bot),
                                lambda update: handle_update(office, update), set_webhook)
        if s.telegram_webhook_url:
            log.info("telegram: webhook at %s", s.telegram_webhook_url)
        else:
            log.info("telegram: long polling as @%s", app.bot.username)

    async def stop(self) -> None:
        # stop taking updates first, then finish the one in hand; stored ones wait for the next start
        await self.intake.stop()
        await self.application.shutdown()

    async def set_commands(self) -> None:
        """The command menu, in Chinese by default and in English for English-language clients."""
        scopes = {"private": BotCommandScopeAllPrivateChats(), "group": BotCommandScopeAllGroupChats()}
        try:
            for (where, language), commands in command_menus().items():
                await self.application.bot.set_my_commands(
                    [BotCommand(name, summary) for name, summary in commands],
                    scope=scopes[where], language_code=language)
        except TelegramError:
            # a missing menu is cosmetic: people can still type commands
            log.warning("telegram: setting the command menu failed", exc_info=True)
        if self.office is not None:
            await set_chat_menus(self.application.bot, self.office)


async def set_chat_menus(bot, office: Office, chat_ids: list[str] | None = None) -> None:
    """Each linked staff member's private chat gets a menu of their own commands."""
    try:
        for chat_id, commands in await chat_menus(office.sessionmaker, office.language, chat_ids):
            await bot.set_my_commands([BotCommand(name, summary) for name, summary in commands],
                                      scope=BotCommandScopeChat(int(chat_id)))
    except (TelegramError, ValueError):
        log.warning("telegram: setting the staff command menus failed", exc_info=True)


async def handle_update(office: Office, update: object) -> None:
    """One update to the office; a button press is always answered, with gridbot's alert if any."""
    if not isinstance(update, Update):
        return
    query = update.callback_query
    alert = None
    try:
        inbound = to_inbound(update)
        if inbound is not None:
            reply = await office.handle(inbound)
            alert = None if reply.alert_in_chat else reply.alert  # said once: in the chat, no pop-up
            if reply.menu_changed and not inbound.is_group:
                await set_chat_menus(update.get_bot(), office, [inbound.chat_id])
    finally:
        if query is not None:
            # always answer, or the person's client shows a spinner for many seconds
            try:
                await query.answer(text=(alert or "")[:200] or None, show_alert=bool(alert))
            except TelegramError as e:  # too old, or a network hiccup: nothing to undo
                log.info("telegram: answering callback query failed: %s", e)


def setup_gridbot(application: Application, settings: Settings, *, group: int = 0,
                  scheduler: bool | None = None) -> TypeHandler:
    """Mount gridbot into a python-telegram-bot Application you already run.

    Call it after adding your own handlers: gridbot's handler goes last in `group`, so it only
    gets what yours did not take. On the Application's post_init gridbot opens its database and
    starts its delivery worker (and scheduler when enabled); post_shutdown stops them. Hooks you
    set on the builder still run first.
    """
    from ..app import Services, open_runtime

    state: dict[str, Services] = {}

    async def to_gridbot(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        if "services" in state:
            await handle_update(state["services"].rt.office, update)

    their_init, their_shutdown = application.post_init, application.post_shutdown

    async def post_init(app: Application) -> None:
        if their_init is not None:
            await their_init(app)
        rt = await open_runtime(settings, {NAME: TelegramAdapter(app.bot)}, frozenset({NAME}))
        state["services"] = Services(settings, rt, scheduler)
        await state["services"].start()

    async def post_shutdown(app: Application) -> None:
        if "services" in state:
            await state.pop("services").stop()
        if their_shutdown is not None:
            await their_shutdown(app)

    application.post_init = post_init
    application.post_shutdown = post_shutdown
    handler = TypeHandler(Update, to_gridbot)
    application.add_handler(handler, group=group)
    return handler


def build(settings: Settings) -> TelegramRuntime:
    if settings.telegram_webhook_url and not settings.telegram_webhook_secret:
        # without the secret anyone who finds the URL could post updates "from" a grid leader
        raise ConfigError("TELEGRAM_WEBHOOK_URL needs TELEGRAM_WEBHOOK_SECRET (1-256 of A-Z a-z 0-9 _ -): "
                          "without it anyone who finds the URL could send updates")
    base = settings.telegram_api_base_url or DEFAULT_BASE_URL
    application = (
        ApplicationBuilder()
        .token(settings.telegram_bot_token)
        .base_url(base)
        .base_file_url(file_url(base))
        .concurrent_updates(False)  # one update at a time, in order: a chat's messages keep their order
        .build()
    )
    return TelegramRuntime(settings, application)
