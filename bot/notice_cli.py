"""`gridbot notice-card NODE [--qr FILE]`: the grid's notice card (网格公示牌) to print, with the
微信客服 link (WECHAT_KF_LINK) and, with --qr, that link as a QR code (PNG or SVG, by the name)."""

from __future__ import annotations

import argparse
import asyncio
import sys

from sqlalchemy.ext.asyncio import AsyncSession

from workflows.i18n import T
from workflows.notice_card import notice_card

from .settings import Settings


def cmd_notice_card(args: argparse.Namespace, settings: Settings) -> int:
    from .cli import ctx_for, with_session

    link = settings.wechat_kf_link
    if args.qr and not link:
        print("--qr needs WECHAT_KF_LINK (微信客服 → 客服账号 → 获取客服链接)", file=sys.stderr)
        return 2

    async def go(session: AsyncSession) -> int:
        print(await notice_card(ctx_for(session, settings), T(settings.language), args.node, link))
        return 0

    code = asyncio.run(with_session(settings, go))
    if code == 0 and args.qr:
        import segno

        segno.make(link, error="m").save(args.qr, scale=10, border=4)
        print(f"QR code of {link} written to {args.qr}")
    return code


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("notice-card", help="print a grid's notice card (网格公示牌) with the 微信客服 way in")
    p.add_argument("node", metavar="NODE_CODE", help="the grid whose notice card to print")
    p.add_argument("--qr", metavar="FILE", help="also write the WECHAT_KF_LINK QR code (.png or .svg)")
    p.set_defaults(fn=cmd_notice_card)
