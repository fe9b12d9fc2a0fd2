"""One resident, several WeChat doors: the 公众号 and 微信客服 of one office give the same person
the same unionid (when both are bound to one Open Platform account), so a new door whose unionid
is known joins the person behind it instead of making a new one. Without a unionid, the one-time
code of /bindaccount (handlers/link.py) joins them. Also: a resident who unfollowed the account."""

from __future__ import annotations

from sqlalchemy import select

from .context import Ctx
from .models import Account, Person

UNFOLLOWED = "unfollowed the account"


async def person_by_unionid(ctx: Ctx, unionid: str) -> Person | None:
    """The person who already came through another door with this unionid (the oldest account)."""
    row = (await ctx.session.execute(
        select(Account.person_id).where(Account.unionid == unionid).order_by(Account.id).limit(1)
    )).scalar()
    return await ctx.session.get(Person, row) if row is not None else None


async def remember_unionid(ctx: Ctx, account: Account, unionid: str | None) -> None:
    """A known account seen with a unionid for the first time keeps it for the next door."""
    if unionid and not account.unionid:
        account.unionid = unionid


async def unfollowed(ctx: Ctx, channel: str, external_id: str) -> None:
    """The resident unfollowed (取消关注): nothing can reach them there until they follow again,
    which any message from them shows (handlers.office.identify clears the mark)."""
    account = (await ctx.session.execute(
        select(Account).where(Account.channel == channel, Account.external_id == external_id)
    )).scalar_one_or_none()
    if account is not None:
        account.undeliverable = UNFOLLOWED
