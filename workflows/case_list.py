"""A filtered, sorted, paged list of the cases a person may see (the web console's case list and
its Excel export).

Scope comes from workflows.scope (the same rule as the chat's can_view); the filters are the
desk's questions: where (a node's subtree), state, category, overdue, yellow/red card, source,
the channel it came in by, a period, and words in the number, description or address.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import date

from sqlalchemy import ColumnElement, and_, exists, func, or_, select

from . import scope
from .context import Ctx
from .deadlines import RED, YELLOW, carded
from .ledgers import window
from .models import OPEN_STATUSES, Case, CaseEvent, CaseStatus

PAGE_SIZE = 50
CLOSED_STATUSES = (CaseStatus.closed, CaseStatus.declined, CaseStatus.cancelled, CaseStatus.merged)
SORTS = {
    "created": Case.created_at,
    "deadline": Case.deadline_at,
    "number": Case.number,
    "status": Case.status,
}


@dataclass
class Filters:
    node_path: str | None = None  # a node's subtree, already checked to be in scope
    status: str | None = None  # "open", "closed" or one CaseStatus
    category_id: int | None = None
    overdue: bool = False
    card: str | None = None  # "yellow" (yellow or red) | "red"
    source: str | None = None  # resident | patrol | staff | hotline …
    channel: str | None = None  # telegram | wecom | wechat_kf | open311 … (the report's channel)
    first: date | None = None  # created on or after (local date)
    last: date | None = None  # created on or before (local date)
    text: str | None = None

    def as_query(self) -> dict[str, str]:
        out = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if v not in (None, False, ""):
                out[f.name] = "1" if v is True else str(v)
        return out


def conditions(ctx: Ctx, paths: list[str], f: Filters) -> list[ColumnElement[bool]]:
    dialect = ctx.session.bind.dialect.name if ctx.session.bind is not None else None
    where: list[ColumnElement[bool]] = scope.case_where(paths, within=f.node_path, dialect=dialect)
    if f.status == "open":
        where.append(Case.status.in_([str(s) for s in OPEN_STATUSES]))
    elif f.status == "closed":
        where.append(Case.status.in_([str(s) for s in CLOSED_STATUSES]))
    elif f.status:
        where.append(Case.status == f.status)
    if f.category_id:
        where.append(Case.category_id == f.category_id)
    if f.overdue:
        where.append(and_(Case.status.in_([str(s) for s in OPEN_STATUSES]), Case.deadline_at < ctx.now()))
    if f.card == "red":
        where.append(carded(RED))
    elif f.card == "yellow":
        where.append(carded(YELLOW))
    if f.source:
        where.append(Case.source == f.source)
    if f.channel:
        where.append(exists().where(CaseEvent.case_id == Case.id, CaseEvent.action == "reported",
                                    CaseEvent.channel == f.channel))
    if f.first or f.last:
        start, end = window(ctx, f.first or date(2000, 1, 1), f.last or date(2999, 12, 31))
        where.append(and_(Case.created_at >= start, Case.created_at < end))
    if f.text:
        words = f.text.strip()[:100]
        like = "%" + words.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        where.append(or_(Case.number == words.upper(), Case.description.like(like, escape="\\"),
                         Case.address.like(like, escape="\\")))
    return where


@dataclass
class Page:
    cases: list[Case]
    total: int
    page: int
    pages: int


async def find(ctx: Ctx, paths: list[str], f: Filters, *, sort: str = "created", descending: bool = True,
               page: int = 1, size: int = PAGE_SIZE) -> Page:
    """One page of the cases in scope that match, and how many match in all."""
    where = conditions(ctx, paths, f)
    total = (await ctx.session.execute(select(func.count()).select_from(Case).where(*where))).scalar_one()
    pages = max(1, -(-total // size))
    page = min(max(1, page), pages)
    col = SORTS.get(sort, Case.created_at)
    # key and tie-breaker in one direction, no NULLS LAST: an index walks it (ix_case_deadline_at);
    # cases without a deadline (not registered yet) come where the database puts NULLs
    key = col.desc() if descending else col.asc()
    order = [key, Case.id.desc() if descending else Case.id.asc()]
    rows = await ctx.session.execute(select(Case).where(*where).order_by(*order)
                                     .limit(size).offset((page - 1) * size))
    return Page(list(rows.scalars()), total, page, pages)


def local_date(value: str | None) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None

