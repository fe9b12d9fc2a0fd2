"""`gridbot notice-card NODE [--qr FILE] [--mp-qr FILE]`: the grid's notice card (网格公示牌) to print,
with the 微信客服 link (WECHAT_KF_LINK) and the 公众号's follow URL (WECHAT_MP_FOLLOW_URL); --qr and
--mp-qr write those as QR codes (PNG or SVG, by the name)."""

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

    follow = settings.wechat_mp_follow_url
    if args.mp_qr and not follow:
        print("--mp-qr needs WECHAT_MP_FOLLOW_URL (公众号 → 设置与开发 → 账号设置 → 二维码, or a 带参数二维码 URL)",
              file=sys.stderr)
        return 2

    async def go(session: AsyncSession) -> int:
        print(await notice_card(ctx_for(session, settings), T(settings.language), args.node, link, follow))
        return 0

    code = asyncio.run(with_session(settings, go))
    if code == 0:
        import segno

        for target, url in ((args.qr, link), (args.mp_qr, follow)):
            if target:
                segno.make(url, error="m").save(target, scale=10, border=4)
                print(f"QR code of {url} written to {target}")
    return code


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("notice-card", help="print a grid's notice card (网格公示牌) with the 微信客服 and 公众号 ways in")
    p.add_argument("node", metavar="NODE_CODE", help="the grid whose notice card to print")
    p.add_argument("--qr", metavar="FILE", help="also write the WECHAT_KF_LINK QR code (.png or .svg)")
    p.add_argument("--mp-qr", metavar="FILE", help="also write the WECHAT_MP_FOLLOW_URL QR code (.png or .svg)")
    p.set_defaults(fn=cmd_notice_card)
