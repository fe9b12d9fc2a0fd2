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
from .settings import Settings

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    office: Office
    delivery: Delivery


async def open_runtime(settings: Settings, adapters: dict, channels: frozenset[str],
                       clock: Clock | None = None) -> Runtime:
    engine = make_engine(settings.database_url)
    await check_schema(engine, settings.database_url)
    sm = make_sessionmaker(engine)
    clock = clock or SystemClock()
    delivery = Delivery(sm, adapters, clock=clock, poll_seconds=settings.delivery_poll_seconds,
                        language=settings.language, timezone=settings.timezone)
    office = Office(sm, clock=clock, channels=channels, language=settings.language, timezone=settings.timezone,
                    on_commit=delivery.wake)
    return Runtime(engine, sm, office, delivery)


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


async def run_shell(settings: Settings, who: str | None = None, resident: str | None = None) -> int:
    from .channels.terminal import TerminalAdapter, TerminalShell

    adapter = TerminalAdapter(sys.stdout)
    rt = await open_runtime(settings, {"terminal": adapter}, frozenset({"terminal"}))
    try:
        shell = TerminalShell(rt.office, rt.delivery, adapter)
        await shell.prepare()
        if who and not await shell.act_as(who):
            return 2
        if resident:
            shell.act_as_resident(resident)
        await shell.run()
    finally:
        await rt.engine.dispose()
    return 0


class Services:
    """The delivery worker and, when enabled, the scheduler, running over one runtime."""

    def __init__(self, settings: Settings, rt: Runtime, scheduler: bool | None = None) -> None:
        self.rt = rt
        self.scheduler = None
        if settings.scheduler_enabled if scheduler is None else scheduler:
            from . import scheduler as sched

            self.scheduler = sched.build(settings, rt.sessionmaker, rt.office)
        self._delivery: asyncio.Task | None = None

    async def start(self) -> None:
        self._delivery = asyncio.create_task(self.rt.delivery.run())
        if self.scheduler is not None:
            await self.scheduler.start()

    async def stop(self) -> None:
        if self.scheduler is not None:
            await self.scheduler.stop()
        self.rt.delivery.stop()
        if self._delivery is not None:
            await self._delivery
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
    for c in channels:
        await c.start(rt.office)
        log.info("channel %s started", c.name)
    await server.start()
    await services.start()
    try:
        await stop.wait()
    finally:
        await server.stop()
        for c in channels:
            await c.stop()
        await services.stop()
    return 0


async def run(settings: Settings) -> int:
    if not settings.chat_channels:
        print("没有配置聊天平台的令牌，打开终端频道。/ No chat tokens configured: opening the terminal channel.")
        return await run_shell(settings)
    return await run_channels(settings)
