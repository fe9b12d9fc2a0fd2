"""One-time codes (/bindaccount, /link, /bind): how they are made, tried and locked out.

A code is 8 (10 for a group) characters from an alphabet without look-alikes (no 0/O, 1/I/L),
drawn with `secrets`: 31^8 ≈ 8.5·10^11. Wrong tries are counted per chat account and per chat:
the 5th wrong try within 15 minutes locks both out for 15 minutes, so a guesser gets at most
~500 tries a day from one account — a chance of about 10^-9 per code. Every code is single use
(the row is claimed by an UPDATE … WHERE used_at IS NULL) and every issue, use, wrong try and
lock-out is written to `code_event`.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import func, or_, select, update

from .code_models import CodeEvent
from .context import Ctx
from .errors import Invalid
from .models import OneTimeToken

ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
# a console sign-in link is clicked, not typed: 32 characters, 31^32 ≈ 2^158
LENGTH = {"acct": 8, "link": 8, "bind": 10, "console": 32}
MAX_FAILURES = 5
WINDOW = timedelta(minutes=15)


@dataclass(frozen=True)
class Who:
    """Who is trying a code: the chat account and the chat."""

    channel: str | None
    user_id: str | None
    chat_id: str | None


class CodeRefused(Invalid):
    """A wrong, used or expired code, or a locked-out sender; `counted` when it is a wrong try."""

    def __init__(self, msgid: str, *, counted: bool = True, detail: str = "", **params: object) -> None:
        super().__init__(msgid, **params)
        self.counted = counted
        self.detail = detail


def new_code(purpose: str) -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(LENGTH.get(purpose, 8)))


def normalise(text: str) -> str:
    """What a person types back: any case, spaces and dashes allowed."""
    return "".join(c for c in text.upper() if c not in " -_\u3000")


async def issue(ctx: Ctx, purpose: str, lifetime: timedelta, *, person_id: int | None = None,
                node_id: int | None = None, who: Who | None = None) -> str:
    for _ in range(5):  # a collision is ~10^-12; still, never reuse a live code
        code = new_code(purpose)
        if await ctx.session.get(OneTimeToken, code) is None:
            break
    ctx.session.add(OneTimeToken(token=code, purpose=purpose, node_id=node_id, person_id=person_id,
                                 expires_at=ctx.now() + lifetime))
    await _event(ctx, purpose, "issued", who, person_id=person_id, node_id=node_id)
    await ctx.session.flush()
    return code


async def locked_for(ctx: Ctx, who: Who) -> timedelta | None:
    """How long the sender (their account or their chat) is still locked out, if at all."""
    conds = []
    if who.user_id:
        conds.append((CodeEvent.channel == who.channel) & (CodeEvent.user_id == who.user_id))
    if who.chat_id:
        conds.append((CodeEvent.channel == who.channel) & (CodeEvent.chat_id == who.chat_id))
    if not conds:
        return None
    since = ctx.now() - WINDOW
    for cond in conds:
        rows = (await ctx.session.execute(
            select(CodeEvent.at).where(cond, CodeEvent.event == "failed", CodeEvent.at > since)
            .order_by(CodeEvent.at.desc()).limit(MAX_FAILURES))).scalars().all()
        if len(rows) >= MAX_FAILURES:
            return rows[0] + WINDOW - ctx.now()  # 15 minutes after the last wrong try
    return None


async def redeem(ctx: Ctx, purpose: str, text: str, who: Who) -> OneTimeToken:
    """The code's row, now used; raises CodeRefused. Run it in a savepoint and call `refused`
    outside it, so a wrong try is counted even though the refusal rolls back."""
    wait = await locked_for(ctx, who)
    if wait is not None:
        minutes = max(1, int(wait.total_seconds() // 60) + 1)
        raise CodeRefused("错误次数太多，已暂停验证。请 {minutes} 分钟后再试。", counted=False, detail="locked",
                          minutes=minutes)
    code = normalise(text)
    row = await ctx.session.get(OneTimeToken, code) if 0 < len(code) <= 64 else None
    if row is None or row.purpose != purpose:
        raise CodeRefused("码无效，请检查后重试。", detail="wrong")
    if row.used_at is not None:
        raise CodeRefused("这个码已经用过了，请重新生成。", detail="used")
    if ctx.now() > row.expires_at:
        raise CodeRefused("这个码已过期，请重新生成。", detail="expired")
    claimed = await ctx.session.execute(update(OneTimeToken).where(
        OneTimeToken.token == code, OneTimeToken.used_at.is_(None)).values(used_at=ctx.now()))
    if claimed.rowcount != 1:  # someone else used it a moment ago
        raise CodeRefused("这个码已经用过了，请重新生成。", detail="used")
    await ctx.session.refresh(row)
    await _event(ctx, purpose, "used", who, person_id=row.person_id, node_id=row.node_id)
    return row


async def refused(ctx: Ctx, purpose: str, who: Who, err: CodeRefused) -> None:
    """Writes the refusal to the audit trail (a wrong try counts towards the lock-out)."""
    await _event(ctx, purpose, "failed" if err.counted else "locked", who, detail=err.detail)


async def failures(ctx: Ctx, who: Who) -> int:
    return (await ctx.session.execute(select(func.count()).select_from(CodeEvent).where(
        CodeEvent.event == "failed", CodeEvent.channel == who.channel,
        or_(CodeEvent.user_id == who.user_id, CodeEvent.chat_id == who.chat_id)))).scalar_one()


async def _event(ctx: Ctx, purpose: str, event: str, who: Who | None, *, person_id: int | None = None,
                 node_id: int | None = None, detail: str | None = None) -> None:
    ctx.session.add(CodeEvent(at=ctx.now(), purpose=purpose, event=event,
                              channel=who.channel if who else None, user_id=who.user_id if who else None,
                              chat_id=who.chat_id if who else None, person_id=person_id, node_id=node_id,
                              detail=detail))
