"""The `gridbot` command."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession

from workflows.clock import SystemClock
from workflows.context import Ctx
from workflows.errors import DomainError
from workflows.i18n import T

from .db import SchemaOutOfDate, check_schema, make_engine, make_sessionmaker, upgrade
from .media import configure as configure_media
from .settings import Settings, get_settings

# later features add their subcommands from these modules (each has add_commands(subparsers))
EXTRA_COMMANDS = ("bot.jobs_cli", "bot.wecom_cli", "bot.geo_cli", "bot.excel_cli", "bot.stats_cli", "bot.api_cli",
                  "bot.media_cli", "bot.outbox_cli", "bot.care_cli", "bot.notice_cli",
                  "bot.wechat_mp_cli")


async def with_session(settings: Settings, fn: Callable[[AsyncSession], Awaitable[int]]) -> int:
    """Runs fn in one transaction against an up-to-date schema."""
    engine = make_engine(settings.database_url)
    try:
        await check_schema(engine, settings.database_url)
        async with make_sessionmaker(engine)() as session, session.begin():
            return await fn(session)
    finally:
        await engine.dispose()


def ctx_for(session: AsyncSession, settings: Settings) -> Ctx:
    return Ctx(session=session, clock=SystemClock(), channels=settings.chat_channels | {"terminal"},
               language=settings.language, timezone=settings.timezone)


def cmd_db(args: argparse.Namespace, settings: Settings) -> int:
    if args.action == "upgrade":
        upgrade(settings.database_url)
        print("database is up to date")
        return 0

    async def current() -> int:
        from .db import current_revision, head_revision

        engine = make_engine(settings.database_url)
        try:
            print(f"current: {await current_revision(engine)}  head: {head_revision(settings.database_url)}")
        finally:
            await engine.dispose()
        return 0

    return asyncio.run(current())


def cmd_import(args: argparse.Namespace, settings: Settings) -> int:
    from workflows.importer import ImportFailed, import_file

    async def go(session: AsyncSession) -> int:
        report = await import_file(session, Path(args.file))
        print(report)
        return 0

    try:
        asyncio.run(with_session(settings, go))
    except ImportFailed as e:
        print(f"import failed, nothing was written:\n{e}", file=sys.stderr)
        return 1
    if settings.wecom_enabled:
        # the import may have changed who is on a grid: its WeChat Work group follows
        from .wecom_cli import api_for, sync_groups

        async def sync(session: AsyncSession) -> int:
            for line in await sync_groups(session, api_for(settings)):
                print(f"wecom: {line}")
            return 0

        asyncio.run(with_session(settings, sync))
    return 0


def cmd_export(args: argparse.Namespace, settings: Settings) -> int:
    from workflows.importer import export_data

    async def go(session: AsyncSession) -> int:
        if args.file and Path(args.file).suffix.lower() == ".xlsx":  # the care register as a table
            from workflows.import_tables import export_care_xlsx

            n = await export_care_xlsx(session, Path(args.file))  # on the access log: with_session commits
            print(f"{args.file}: the care register, {n} rows (`gridbot import {args.file}` reads it back)")
            return 0
        text = await export_data(session)
        if args.file:
            Path(args.file).write_text(text, encoding="utf-8")
        else:
            sys.stdout.write(text)
        return 0

    return asyncio.run(with_session(settings, go))


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    from workflows.importer import load_demo

    async def go(session: AsyncSession) -> int:
        print(await load_demo(session))
        return 0

    return asyncio.run(with_session(settings, go))


def cmd_bind_token(args: argparse.Namespace, settings: Settings) -> int:
    from workflows.accounts import bind_token

    async def go(session: AsyncSession) -> int:
        token = await bind_token(ctx_for(session, settings), args.node)
        print(f"/bind {token}")
        print("Send this in the node's work group within 24 hours; it works once.")
        return 0

    return asyncio.run(with_session(settings, go))


def cmd_invite(args: argparse.Namespace, settings: Settings) -> int:
    from workflows.accounts import link_token

    async def go(session: AsyncSession) -> int:
        token = await link_token(ctx_for(session, settings), args.person)
        print(f"/link {token}")
        print("The person sends this to the bot in a private chat within 24 hours; it works once.")
        return 0

    return asyncio.run(with_session(settings, go))


def cmd_shell(args: argparse.Namespace, settings: Settings) -> int:
    from .app import run_shell

    return asyncio.run(run_shell(settings, who=args.as_, resident=args.resident))


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    from .app import run

    return asyncio.run(run(settings))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="gridbot", description="Community grid governance chat-bot (网格化管理)")
    p.add_argument("-v", "--verbose", action="count", default=0,
                   help="show log lines: -v the libraries' too (alembic, the scheduler, HTTP), -vv debug")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("run", help="run the configured chat channels (the terminal when none)").set_defaults(fn=cmd_run)
    db = sub.add_parser("db", help="database schema")
    db.add_argument("action", choices=["upgrade", "current"],
                    help="upgrade: create or migrate the schema; current: show its revision and the code's")
    db.set_defaults(fn=cmd_db)
    imp = sub.add_parser("import", help="load the tree, people, teams, categories (YAML, or people CSV)")
    imp.add_argument("file", help="a YAML file (the format `gridbot export` writes) or a people CSV")
    imp.set_defaults(fn=cmd_import)
    exp = sub.add_parser("export", help="write the reference data as YAML (FILE.xlsx: the care register as a table)")
    exp.add_argument("file", nargs="?", help="where to write it (default: print it); a FILE.xlsx gets the care "
                     "register in the form `gridbot template care` writes")
    exp.set_defaults(fn=cmd_export)
    sub.add_parser("demo", help="load the demo street").set_defaults(fn=cmd_demo)
    bt = sub.add_parser("bind-token", help="a single-use code to bind a work group to a node")
    bt.add_argument("node", metavar="NODE_CODE", help="the node whose work group it binds, e.g. CY-01")
    bt.set_defaults(fn=cmd_bind_token)
    inv = sub.add_parser("invite", help="a single-use code linking a staff member's chat account")
    inv.add_argument("person", metavar="PERSON_CODE", help="the staff member's code, e.g. CY01-L")
    inv.set_defaults(fn=cmd_invite)
    sh = sub.add_parser("shell", help="the dialogues in this terminal")
    who = sh.add_mutually_exclusive_group()
    who.add_argument("--as", dest="as_", metavar="CODE_OR_NAME", help="act as a staff member")
    who.add_argument("--resident", metavar="NAME", help="act as a resident")
    sh.set_defaults(fn=cmd_shell)
    for name in EXTRA_COMMANDS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name != name:
                raise
            continue
        module.add_commands(sub)
    return p


# loggers of other libraries: quiet unless -v (alembic alone prints two INFO lines per command)
LIBRARY_LOGGERS = ("alembic", "apscheduler", "httpx", "httpcore", "telegram", "aiogram", "aiohttp", "sqlalchemy",
                   "wechatpy", "urllib3", "asyncio")


def setup_logging(settings: Settings, verbose: int, quiet_own: bool) -> None:
    """Our own log lines at LOG_LEVEL (WARNING in the terminal shell, whose screen is the chat);
    the libraries' only with -v."""
    own = "DEBUG" if verbose > 1 else ("INFO" if verbose else settings.log_level.upper())
    if quiet_own and not verbose:
        own = "WARNING"
    logging.basicConfig(level=own, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    libraries = "DEBUG" if verbose > 1 else ("INFO" if verbose else "WARNING")
    for name in LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(libraries)
    if verbose < 2:
        logging.getLogger("sqlalchemy").setLevel("WARNING")  # its INFO is every mapper and statement


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "fn", None) is None:
        parser.print_help()
        return 0 if args.command is None else 2
    settings = get_settings()
    setup_logging(settings, args.verbose, quiet_own=args.command == "shell" or (
        args.command == "run" and not settings.chat_channels))
    try:  # every command may store a file (a ledger, a chart): the media store is the configured one
        configure_media(settings)
    except ValueError as e:  # a wrong MEDIA_* setting stops only what needs the store
        logging.getLogger(__name__).warning("media store not configured: %s", e)
    try:
        return args.fn(args, settings) or 0
    except SchemaOutOfDate as e:
        print(str(e), file=sys.stderr)
        return 2
    except DomainError as e:
        print(e.render(T(settings.language)), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
