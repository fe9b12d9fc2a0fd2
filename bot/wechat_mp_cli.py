"""`gridbot wechat-mp menu [--show]`: pushes the 公众号's custom menu (自定义菜单, `menu/create`):
报事 (start a report), 我的事件 (the resident's cases) and 联系网格员 — a link into 微信客服 when
WECHAT_KF_LINK is set, else the help text. The CLICK keys are the ones wechat_mp_convert maps to
commands; WeChat shows a new menu to followers within a few minutes."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from workflows.i18n import T

from .settings import Settings


def menu(settings: Settings) -> dict:
    t = T(settings.language)
    contact = ({"type": "view", "name": t("联系网格员"), "url": settings.wechat_kf_link} if settings.wechat_kf_link
               else {"type": "click", "name": t("联系网格员"), "key": "GB_CONTACT"})
    return {"button": [{"type": "click", "name": t("报事"), "key": "GB_REPORT"},
                       {"type": "click", "name": t("我的事件"), "key": "GB_MINE"}, contact]}


async def push_menu(settings: Settings, body: dict) -> dict:
    from .channels.wechat_mp_api import OfficialAccountAPI

    api = OfficialAccountAPI(settings.wechat_mp_app_id, settings.wechat_mp_secret, settings.wechat_mp_api_base_url)
    return await api.post("menu/create", body)


def cmd_menu(args: argparse.Namespace, settings: Settings) -> int:
    body = menu(settings)
    if args.show:
        print(json.dumps(body, ensure_ascii=False, indent=2))
        return 0
    if not (settings.wechat_mp_app_id and settings.wechat_mp_secret):
        print("gridbot wechat-mp menu needs WECHAT_MP_APP_ID and WECHAT_MP_SECRET", file=sys.stderr)
        return 2
    from .channels.wecom_api import WeComError

    try:
        asyncio.run(push_menu(settings, body))
    except (WeComError, Exception) as e:  # a refusal or no connection: say which, no traceback
        print(f"the menu was not created: {e}", file=sys.stderr)
        return 1
    print("menu created: " + " | ".join(b["name"] for b in body["button"]))
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("wechat-mp", help="the 公众号 (Official Account): its custom menu")
    mp = p.add_subparsers(dest="wechat_mp_command", required=True)
    m = mp.add_parser("menu", help="push the custom menu (报事, 我的事件, 联系网格员) to the 公众号")
    m.add_argument("--show", action="store_true", help="print the menu instead of pushing it")
    m.set_defaults(fn=cmd_menu)
