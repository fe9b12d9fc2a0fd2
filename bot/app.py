"""Wiring for `gridbot run` and `gridbot shell`: database, office, delivery, channels, scheduler."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from handlers.office import Office
from workflows.clock import Clock, SystemClock

from .channels.base import ChannelRuntime
from .db import check_schema, make_engine, make_sessionmaker
from .delivery import Delivery
from .media import MediaLibrary
from .media import configure as configure_media
from .media_fetch import MediaFetcher
from .settings import ConfigError, Settings

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    office: Office
    delivery: Delivery
    fetcher: MediaFetcher | None = None  # attachments into the media store, after each commit


async def open_runtime(settings: Settings, adapters: dict, channels: frozenset[str],
                       clock: Clock | None = None) -> Runtime:
    engine = make_engine(settings.database_url)
    await check_schema(engine, settings.database_url)
    sm = make_sessionmaker(engine)
    clock = clock or SystemClock()
    from .webhook import WebhookSender  # the API's webhooks go out through the same outbox

    adapters = {**adapters, WebhookSender.name: WebhookSender(sm)}
    delivery = Delivery(sm, adapters, clock=clock, poll_seconds=settings.delivery_poll_seconds,
                        language=settings.language, timezone=settings.timezone)
    fetcher = wire_media(settings, sm, adapters, clock)

    def committed() -> None:
        delivery.wake()
        fetcher.wake()

    office = Office(sm, clock=clock, channels=channels, language=settings.language, timezone=settings.timezone,
                    on_commit=committed)
    return Runtime(engine, sm, office, delivery, fetcher)


def wire_media(settings: Settings, sm: async_sessionmaker[AsyncSession], adapters: dict,
               clock: Clock) -> MediaFetcher:
    """The media store for this process; senders get the library, downloaders the fetcher."""
    store = configure_media(settings)
    library = MediaLibrary(sm, store, clock)
    for a in adapters.values():
        if hasattr(a, "media"):
            a.media = library
    return MediaFetcher(sm, adapters, store=store, clock=clock, poll_seconds=settings.media_fetch_seconds,
                        language=settings.language, timezone=settings.timezone)


def build_channels(settings: Settings) -> list[ChannelRuntime]:
    out: list[ChannelRuntime] = []
    if settings.telegram_enabled:
        if settings.telegram_framework == "aiogram":
            from .channels import telegram_aiogram as tg
        else:
            from .channels import telegram_ptb as tg
        out.append(tg.build(settings))
    if settings.wecom_enabled:
        from .channels import wecom

        out.append(wecom.build(settings))
    if settings.wechat_kf_enabled:
        from .channels import wechat_kf

        out.append(wechat_kf.build(settings))
    return out


async def run_shell(settings: Settings, who: str | None = None, resident: str | None = None,
                    api: bool = False) -> int:
    """The terminal trial: the dialogues, delivery and — as in `gridbot run` — the scheduler's
    sweeps, on a clock that `:time` can move; with `api`, the web server too (`gridbot run`)."""
    from workflows.clock import SettableClock

    from .channels.terminal import TerminalAdapter, TerminalShell

    adapter = TerminalAdapter(sys.stdout)
    rt = await open_runtime(settings, {"terminal": adapter}, frozenset({"terminal"}), clock=SettableClock())
    server = await _terminal_api(settings, rt) if api else None  # `gridbot run` only, not `gridbot shell`
    scheduler = None
    if settings.scheduler_enabled:
        from . import scheduler as sched

        scheduler = sched.build(settings, rt.sessionmaker, rt.office)
    try:
        shell = TerminalShell(rt.office, rt.delivery, adapter, scheduler=scheduler)
        shell.fetcher = rt.fetcher
        await shell.prepare()
        if who and not await shell.act_as(who):
            return 2
        if resident:
            shell.act_as_resident(resident)
        if scheduler is not None:
            await scheduler.start(catch_up=False)  # the shell runs the first round before its prompt
        await shell.run()
    finally:
        if scheduler is not None:
            await scheduler.stop()
        if server is not None:
            await server.stop()
        await _close_webhooks(rt)
        await rt.engine.dispose()
    return 0


async def _terminal_api(settings: Settings, rt: Runtime):
    """With no chat tokens the API still runs, beside the terminal, when HTTP_PORT is set or a live
    API key exists. The shell drains the outbox after each line it reads; an API request drains it
    at once, one drain at a time, so cards and webhooks do not wait for the next line."""
    from sqlalchemy import func, select

    from workflows.api_models import ApiKey

    async with rt.sessionmaker() as session:
        keys = (await session.execute(
            select(func.count()).select_from(ApiKey).where(ApiKey.revoked_at.is_(None)))).scalar_one()
    if settings.http_port is None and not keys:
        return None
    from .open311 import Open311Api
    from .web import from_settings

    drain, lock = rt.delivery.drain, asyncio.Lock()

    async def serial_drain(rounds: int = 50) -> None:
        async with lock:
            await drain(rounds)

    rt.delivery.drain = serial_drain  # type: ignore[method-assign]
    tasks: set[asyncio.Task] = set()

    def drain_soon() -> None:
        task = asyncio.get_running_loop().create_task(serial_drain())
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    server = from_settings(settings, rt.sessionmaker, rt.office.clock)
    Open311Api(rt.office, on_commit=drain_soon).routes(server)
    from . import console

    own = console.mount(settings, rt.office, server, on_commit=drain_soon)  # the web console (docs/console.md)
    await server.start()
    print(f"Open311 API: {server.base_url}/open311/v2/ (docs/open311.md)")
    if own is not None:
        await own.start()
        server.also_stop = own
    return server


async def _close_webhooks(rt: Runtime) -> None:
    sender = rt.delivery.adapters.get("webhook")
    if sender is not None:
        await sender.close()


class Services:
    """The delivery worker and, when enabled, the scheduler, running over one runtime."""

    def __init__(self, settings: Settings, rt: Runtime, scheduler: bool | None = None) -> None:
        self.rt = rt
        self.scheduler = None
        if settings.scheduler_enabled if scheduler is None else scheduler:
            from . import scheduler as sched

            self.scheduler = sched.build(settings, rt.sessionmaker, rt.office)
        self._delivery: asyncio.Task | None = None
        self._fetcher: asyncio.Task | None = None

    async def start(self) -> None:
        self._delivery = asyncio.create_task(self.rt.delivery.run())
        if self.rt.fetcher is not None:
            self._fetcher = asyncio.create_task(self.rt.fetcher.run())
        if self.scheduler is not None:
            await self.scheduler.start()

    async def stop_delivery(self) -> None:
        self.rt.delivery.stop()
        if self.rt.fetcher is not None:
            self.rt.fetcher.stop()
        if self._fetcher is not None:
            await self._fetcher
            self._fetcher = None
        if self._delivery is not None:
            await self._delivery
            self._delivery = None

    async def stop(self) -> None:
        if self.scheduler is not None:
            await self.scheduler.stop()
        await self.stop_delivery()
        await _close_webhooks(self.rt)
        await self.rt.engine.dispose()


async def run_channels(settings: Settings) -> int:
    channels = build_channels(settings)
    adapters = {c.name: c.adapter for c in channels}
    rt = await open_runtime(settings, adapters, frozenset(adapters))
    services = Services(settings, rt)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    from .web import from_settings

    server = from_settings(settings, rt.sessionmaker, rt.office.clock)
    for c in channels:  # a channel with HTTP entry points adds them before the server starts
        if hasattr(c, "routes"):
            c.routes(server)
    from .open311 import Open311Api

    Open311Api(rt.office).routes(server)  # the intake API (docs/open311.md)
    from . import console

    own = console.mount(settings, rt.office, server)  # the web console (docs/console.md)
    if own is not None:
        server.also_stop = own
    for c in channels:
        await c.start(rt.office)
        log.info("channel %s started", c.name)
    await server.start()
    if own is not None:
        await own.start()
    await services.start()
    try:
        await stop.wait()
    finally:
        # no new updates, then delivery finishes and marks its sends in flight while the channels'
        # clients are still open (closed first, those sends failed after the platform had them
        # and went out again), then the channels close
        await server.stop()
        await services.stop_delivery()
        for c in channels:
            await c.stop()
        await services.stop()
    return 0


async def run(settings: Settings) -> int:
    if not settings.chat_channels:
        print("没有配置聊天平台的令牌，打开终端频道。/ No chat tokens configured: opening the terminal channel.")
        return await run_shell(settings, api=True)
    try:
        return await run_channels(settings)
    except ConfigError as e:  # a setting to fix, not a bug: the message, no traceback
        print(f"gridbot: {e}", file=sys.stderr)
        return 2
