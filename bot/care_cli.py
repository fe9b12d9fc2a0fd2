"""`gridbot audit access --person CODE`: who looked at a care record, when, and how."""

from __future__ import annotations

import argparse
import asyncio
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from workflows import care
from workflows.context import Ctx
from workflows.errors import DomainError
from workflows.i18n import T

from .settings import Settings


def cmd_access(args: argparse.Namespace, settings: Settings) -> int:
    from .cli import with_session

    async def go(session: AsyncSession) -> int:
        ctx = Ctx(session=session, timezone=settings.timezone)
        try:
            person, rows = await care.access_log(ctx, args.person)
        except DomainError as e:
            print(e.render(T(settings.language)))
            return 1
        print(f"{person.code}: {len(rows)} access(es)")
        for access, name in rows:
            at = access.at.astimezone(ZoneInfo(settings.timezone)).strftime("%Y-%m-%d %H:%M:%S")
            who = name or "(console)"
            print(f"{at}\t{who}\t{access.what}\t{access.channel or ''}")
        return 0

    return asyncio.run(with_session(settings, go))


def add_commands(sub: argparse._SubParsersAction) -> None:
    audit = sub.add_parser("audit", help="audit trails: who looked at the care register")
    asub = audit.add_subparsers(dest="audit_cmd", required=True)
    p = asub.add_parser("access", help="every view of one care person's record")
    p.add_argument("--person", required=True, help="the care person's code, e.g. CY01-H01-1")
    p.set_defaults(fn=cmd_access)
