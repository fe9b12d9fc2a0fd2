"""`gridbot media check` and `gridbot media fetch-missing`: the operator's view of the media store."""

from __future__ import annotations

import argparse
import asyncio

from workflows import media

from .media import configure
from .settings import Settings


def cmd_check(args: argparse.Namespace, settings: Settings) -> int:
    from .cli import with_session

    store = configure(settings)

    async def go(session) -> int:
        checked, problems = await media.check(session, store)
        for p in problems:
            where = f"case {p.case_id}" if p.case_id else "no case"
            ident = p.sha256 or f"item {p.item_id}"
            print(f"{p.what}\t{ident}\t{where}\t{p.detail}")
        print(f"{checked} files checked, {len(problems)} problems")
        return 1 if problems else 0

    return asyncio.run(with_session(settings, go))


async def fetch_missing(settings: Settings) -> int:
    from .app import build_channels
    from .db import check_schema, make_engine, make_sessionmaker
    from .media_fetch import MediaFetcher

    store = configure(settings)
    adapters = {c.name: c.adapter for c in build_channels(settings)}
    engine = make_engine(settings.database_url)
    try:
        await check_schema(engine, settings.database_url)
        for a in adapters.values():  # python-telegram-bot's bot opens its HTTP client here
            if hasattr(getattr(a, "bot", None), "initialize"):
                await a.bot.initialize()
        fetcher = MediaFetcher(make_sessionmaker(engine), adapters, store=store, language=settings.language,
                               timezone=settings.timezone)
        if not fetcher.downloaders:
            print("no chat channel configured: nothing can be fetched")
            return 2
        stored, missing = await fetcher.fetch_missing()
        print(f"{stored} fetched, {missing} still missing")
        return 1 if missing else 0
    finally:
        for a in adapters.values():
            bot = getattr(a, "bot", None)
            if hasattr(bot, "shutdown"):
                await bot.shutdown()
            elif hasattr(getattr(bot, "session", None), "close"):
                await bot.session.close()
        await engine.dispose()


def cmd_fetch_missing(args: argparse.Namespace, settings: Settings) -> int:
    return asyncio.run(fetch_missing(settings))


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("media", help="the media store: check files, fetch what is missing")
    msub = p.add_subparsers(dest="media_command", required=True)
    c = msub.add_parser("check", help="every stored file present and its hash right; report what is missing")
    c.set_defaults(fn=cmd_check)
    f = msub.add_parser("fetch-missing", help="fetch attachments not in the store yet from their platform")
    f.set_defaults(fn=cmd_fetch_missing)
