"""`gridbot stats rebuild`: recompute the statistics rollup from the raw rows (after an upgrade that
adds a figure, a restore, or to check the rollup against the events)."""

from __future__ import annotations

import argparse
import asyncio
import time

from sqlalchemy.ext.asyncio import AsyncSession

from workflows import rollup

from .settings import Settings


def cmd_rebuild(args: argparse.Namespace, settings: Settings) -> int:
    from .cli import with_session

    async def go(session: AsyncSession) -> int:
        t = time.perf_counter()
        n = await rollup.rebuild(session)
        print(f"rollup rebuilt from {n} cases in {time.perf_counter() - t:.1f} s")
        return 0

    return asyncio.run(with_session(settings, go))


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("stats", help="statistics rollup maintenance")
    stats_sub = p.add_subparsers(dest="stats_cmd", required=True)
    rebuild = stats_sub.add_parser("rebuild", help="recompute the per-grid-and-day rollup from cases, events, "
                                                   "check-ins and missed-patrol marks (one transaction)")
    rebuild.set_defaults(fn=cmd_rebuild)
