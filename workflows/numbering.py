"""Case numbers readable aloud: street prefix, local date, sequence — e.g. XH-20261123-007."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from .context import Ctx
from .models import CaseCounter, Node
from .tree import street_of


async def next_number(ctx: Ctx, grid: Node, at: datetime) -> str:
    street = await street_of(ctx, grid)
    prefix = (street.case_prefix or street.code).upper()[:16]
    day = at.astimezone(ZoneInfo(grid.timezone or ctx.timezone)).strftime("%Y%m%d")
    dialect = ctx.session.bind.dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    # an upsert takes the row lock, so two reports at once never share a number
    stmt = (
        insert(CaseCounter)
        .values(prefix=prefix, day=day, last=1)
        .on_conflict_do_update(index_elements=["prefix", "day"], set_={"last": CaseCounter.last + 1})
        .returning(CaseCounter.last)
    )
    seq = (await ctx.session.execute(stmt)).scalar_one()
    return f"{prefix}-{day}-{seq:03d}"


async def last_number(ctx: Ctx, prefix: str, day: str) -> int:
    row = await ctx.session.execute(
        select(CaseCounter.last).where(CaseCounter.prefix == prefix, CaseCounter.day == day)
    )
    return row.scalar_one_or_none() or 0
