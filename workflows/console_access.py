"""Who is signed in to the web console: one-time sign-in links and sessions.

A link's token is a one-time code of `workflows.codes` (purpose "console"): the same generation,
single-use claim, expiry and lock-out — five wrong tries from one address within 15 minutes lock
that address out for 15 minutes — and the same audit trail (`code_event`, channel "console",
the address as the chat). A session id is 32 random bytes; the table keeps only its SHA-256.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from sqlalchemy import select, update

from . import codes
from .console_models import ConsoleSession
from .context import Ctx
from .models import Person

PURPOSE = "console"
CHANNEL = "console"


def hash_id(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def who(address: str | None) -> codes.Who:
    """A browser has no chat account: its address is what the lock-out counts by."""
    return codes.Who(CHANNEL, None, (address or "unknown")[:128])


async def issue_link_token(ctx: Ctx, person_id: int, lifetime: timedelta, via: codes.Who | None = None) -> str:
    return await codes.issue(ctx, PURPOSE, lifetime, person_id=person_id, who=via)


async def sign_in(ctx: Ctx, token: str, address: str | None, hours: float) -> tuple[str, ConsoleSession]:
    """Redeems the link's token and opens a session: (the raw session id for the cookie, the row).
    Raises codes.CodeRefused; a wrong try is counted (in a savepoint, so the refusal's rollback
    keeps it)."""
    sender = who(address)
    try:
        async with ctx.session.begin_nested():
            row = await codes.redeem(ctx, PURPOSE, token, sender)
    except codes.CodeRefused as err:
        await codes.refused(ctx, PURPOSE, sender, err)
        raise
    person = await ctx.session.get(Person, row.person_id)
    raw = secrets.token_urlsafe(32)
    sess = ConsoleSession(id_hash=hash_id(raw), person_id=row.person_id, csrf=secrets.token_urlsafe(24),
                          language=person.language if person else None, address=(address or "")[:64] or None,
                          created_at=ctx.now(), expires_at=ctx.now() + timedelta(hours=hours))
    ctx.session.add(sess)
    await ctx.session.flush()
    return raw, sess


async def session_of(ctx: Ctx, raw: str | None) -> ConsoleSession | None:
    """The live session behind a cookie's id, if any (not expired, not logged out)."""
    if not raw or len(raw) > 100:
        return None
    sess = await ctx.session.get(ConsoleSession, hash_id(raw))
    if sess is None or sess.ended_at is not None or ctx.now() >= sess.expires_at:
        return None
    return sess


async def sign_out(ctx: Ctx, raw: str | None) -> None:
    if raw:
        await ctx.session.execute(update(ConsoleSession).where(
            ConsoleSession.id_hash == hash_id(raw), ConsoleSession.ended_at.is_(None)).values(ended_at=ctx.now()))


async def sessions_of(ctx: Ctx, person_id: int) -> list[ConsoleSession]:
    rows = await ctx.session.execute(select(ConsoleSession).where(ConsoleSession.person_id == person_id)
                                     .order_by(ConsoleSession.created_at))
    return list(rows.scalars())
