"""Excel for the office: `gridbot ledger KIND --node CODE --from DATE --to DATE [--out FILE.xlsx]`
writes a ledger (台账) of a node and everything below it; `gridbot template FILE.xlsx [--kind K]`
writes an empty workbook to fill in and import."""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import date

from sqlalchemy.ext.asyncio import AsyncSession

from workflows import tree
from workflows.context import Ctx
from workflows.errors import NotFound
from workflows.i18n import T
from workflows.import_tables import TABLE_KINDS, write_template
from workflows.ledger_xlsx import write_xlsx
from workflows.ledgers import KINDS, ledger

from .settings import Settings


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"cannot read {text!r}; write a date as 2026-11-01") from None


def cmd_ledger(args: argparse.Namespace, settings: Settings) -> int:
    from .cli import with_session

    t = T(args.lang or settings.language)
    out = args.out or f"{args.kind}-{args.node}-{args.start}-{args.end}.xlsx"

    async def go(session: AsyncSession) -> int:
        ctx = Ctx(session=session, language=t.language, timezone=settings.timezone)
        try:
            node = await tree.node_by_code(ctx, args.node)
            book = await ledger(ctx, t, args.kind, node, args.start, args.end)
        except NotFound as e:
            print(e.render(t), file=sys.stderr)
            return 2
        except ValueError as e:
            print(e, file=sys.stderr)
            return 2

        def progress(n: int) -> None:
            print(f"  {n} rows …", file=sys.stderr, flush=True)

        n = await write_xlsx(t, book, out, progress)
        print(f"{out}: {n} rows")
        return 0

    return asyncio.run(with_session(settings, go))


def cmd_template(args: argparse.Namespace, settings: Settings) -> int:
    from pathlib import Path

    path = Path(args.file)
    if path.suffix == "" and path.name in TABLE_KINDS:  # `gridbot template care` writes care.xlsx
        path = path.with_suffix(".xlsx")
    if path.suffix.lower() != ".xlsx":
        print("the template is an Excel workbook: give a FILE ending in .xlsx", file=sys.stderr)
        return 2
    kinds = (args.kind,) if args.kind else (path.stem,) if path.stem in TABLE_KINDS else TABLE_KINDS
    write_template(path, kinds)
    print(f"{path}: {', '.join(kinds)} — fill it in from row 3, then `gridbot import {path}`")
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ledger", help="write a ledger (台账) as an Excel workbook")
    p.add_argument("kind", choices=KINDS, help="cases 事件台账, patrols 巡查台账, diary 民情日记, "
                   "leave 请销假, assessment 考核表")
    p.add_argument("--node", required=True, metavar="CODE", help="the node (grid, community, street …) and all below it")
    p.add_argument("--from", dest="start", required=True, type=_date, metavar="DATE", help="first day, e.g. 2026-11-01")
    p.add_argument("--to", dest="end", required=True, type=_date, metavar="DATE", help="last day (included)")
    p.add_argument("--out", metavar="FILE.xlsx", help="where to write (default: KIND-NODE-FROM-TO.xlsx here)")
    p.add_argument("--lang", help="zh_CN (default: LANGUAGE) or en")
    p.set_defaults(fn=cmd_ledger)

    p = sub.add_parser("template", help="write an empty Excel workbook to fill in for `gridbot import`")
    p.add_argument("file", metavar="FILE.xlsx", help="people.xlsx, nodes.xlsx, care.xlsx … (or just the kind: "
                   "care) gives that kind; another name gives every kind")
    p.add_argument("--kind", choices=TABLE_KINDS, help="the one kind to write (default: from the file name, else all)")
    p.set_defaults(fn=cmd_template)
