"""The grid's notice card (网格公示牌) as it is printed and posted: the office's own text (Node.notice)
and, where the office runs 微信客服 or a 公众号, the ways in for residents on personal WeChat (the
links that the QR codes on the card also carry)."""

from __future__ import annotations

from sqlalchemy import select

from .context import Ctx
from .errors import NotFound
from .i18n import T
from .models import Node


async def notice_card(ctx: Ctx, t: T, node_code: str, kf_link: str | None = None,
                      follow_url: str | None = None) -> str:
    node = (await ctx.session.execute(select(Node).where(Node.code == node_code))).scalar_one_or_none()
    if node is None:
        raise NotFound("找不到编号为 {code} 的节点。", code=node_code)
    lines = [(node.notice or t("【网格公示牌】{name}", name=node.name)).rstrip()]
    if kf_link:
        lines.append(t("微信扫码或打开链接，随时向网格反映问题（文字、图片、语音、视频、位置均可）：{link}", link=kf_link))
    if follow_url:
        lines.append(t("关注本社区公众号，点“报事”上报问题，办理进度会通知您：{link}", link=follow_url))
    return "\n".join(lines)
