"""`gridbot jobs list` and `gridbot jobs run NAME [--at "YYYY-MM-DD HH:MM"]`."""

from __future__ import annotations

import argparse
import asyncio
import json
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from workflows.clock import FixedClock, SystemClock
from workflows.routines import deadline_digest
from workflows.routines.models import SweepRun
from workflows.routines.sweeps import SWEEPS, run_sweep

from .db import check_schema, make_engine, make_sessionmaker
from .settings import Settings


def parse_at(text: str, tz: str) -> datetime:
    """ISO 8601 ("2026-11-24T08:55:00+08:00"), or a local time without offset ("2026-11-24 08:50")."""
    try:
        at = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"cannot read {text!r}; write it as \"2026-11-23 09:00\" (local time, {tz}) "
                         "or in ISO 8601 with an offset, \"2026-11-23T09:00:00+08:00\"") from None
    return at if at.tzinfo is not None else at.replace(tzinfo=ZoneInfo(tz))


def format_local(at: datetime, tz: str) -> str:
    """The form --at takes, in the office's zone with its offset: 2026-11-24T08:55:00+08:00."""
    return at.astimezone(ZoneInfo(tz)).isoformat(timespec="seconds")


def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    from .scheduler import next_runs

    tz = ZoneInfo(settings.timezone)
    nexts = next_runs(settings.timezone)

    async def last_runs() -> dict[str, tuple]:
        engine = make_engine(settings.database_url)
        try:
            await check_schema(engine, settings.database_url)
            async with make_sessionmaker(engine)() as s:
                rows = await s.execute(select(SweepRun.name, func.max(SweepRun.as_of), func.count())
                                       .group_by(SweepRun.name))
                return {r[0]: (r[1], r[2]) for r in rows}
        except Exception:
            return {}
        finally:
            await engine.dispose()

    last = asyncio.run(last_runs())
    print(f"{'sweep':<18} {'every':>6}  {'next run':<17} {'last run (as of)':<17} runs  what")
    for name, sw in SWEEPS.items():
        nxt = nexts[name].astimezone(tz).strftime("%Y-%m-%d %H:%M") if nexts[name] else "-"
        lr, n = last.get(name, (None, 0))
        lrs = lr.astimezone(tz).strftime("%Y-%m-%d %H:%M") if lr else "-"
        print(f"{name:<18} {sw.every_seconds:>5}s  {nxt:<17} {lrs:<17} {n:>4}  {sw.summary}")
    print(f"times in {settings.timezone}; `gridbot run` runs them (one leader per PostgreSQL database)")
    return 0


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    names = list(SWEEPS) if args.name == "all" else [args.name]
    for n in names:
        if n not in SWEEPS:
            raise SystemExit(f"no sweep {n!r}; choose from: {', '.join(SWEEPS)} or all")
    try:
        clock = FixedClock(parse_at(args.at, settings.timezone)) if args.at else SystemClock()
    except ValueError as e:
        raise SystemExit(f"--at: {e}") from None
    channels = frozenset(args.channels.split(",")) if args.channels else settings.chat_channels | {"terminal"}

    deadline_digest.configure(settings.deadline_digest_over)

    async def go() -> int:
        engine = make_engine(settings.database_url)
        try:
            await check_schema(engine, settings.database_url)
            sm = make_sessionmaker(engine)
            for n in names:
                result = await run_sweep(sm, n, clock=clock, channels=channels, language=settings.language,
                                         timezone=settings.timezone)
                print(json.dumps({"sweep": n, "as_of": format_local(clock.now(), settings.timezone), **result.as_dict()},
                                 ensure_ascii=False))
        finally:
            await engine.dispose()
        return 0

    return asyncio.run(go())


def add_commands(sub: argparse._SubParsersAction) -> None:
    jobs = sub.add_parser("jobs", help="the scheduler's sweeps: list them, or run one now or as of a time")
    jsub = jobs.add_subparsers(dest="jobs_command", required=True)
    jsub.add_parser("list", help="each sweep, its interval, next and last run").set_defaults(fn=cmd_list)
    run = jsub.add_parser("run", help="run one sweep (or all) once")
    run.add_argument("name", help=f"one of: {', '.join(SWEEPS)}, or all")
    run.add_argument("--at", help='as if it were this time: local "2026-11-23 09:00" or ISO 8601 "2026-11-23T09:00:00+08:00"')
    run.add_argument("--channels", help="comma-separated channels to address (default: the configured ones)")
    run.set_defaults(fn=cmd_run)
