"""Time limits (限时办结): from category and urgency; the checkpoints the deadline sweep acts on."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, select

from .context import Ctx
from .models import Case, CaseDeadline, Category, Node, Urgency

# share of the time limit at which each stage falls due: reminders, yellow card, red card
STAGES = (0.5, 0.8, 1.0, 2.0)
STAGE_NAMES = ("remind_50", "remind_80", "yellow_card", "red_card")
YELLOW, RED = 3, 4  # the stage reached by a yellow card, by a red card
SAME_DAY_MINIMUM = timedelta(hours=4)


def compute_deadline(
    start: datetime, category: Category, urgency: str, tz: str, days: int | None = None
) -> datetime:
    if days:
        return start + timedelta(days=days)
    if urgency == Urgency.urgent:
        # 立说立办: by the end of the local day, but never less than a few working hours
        zone = ZoneInfo(tz)
        local = start.astimezone(zone)
        end = datetime.combine(local.date(), time(23, 59, 59), zone)
        return max(end, start + SAME_DAY_MINIMUM)
    hours = category.time_limit_hours or 72
    if urgency == Urgency.major:
        hours *= 3
    return start + timedelta(hours=hours)


async def promised_deadline(ctx: Ctx, case: Case) -> datetime:
    """The deadline a case would get if registered now: what a resident is promised at report.

    The same rule as the deadline set at registration (category, urgency, the grid's time zone).
    """
    category = await ctx.session.get(Category, case.category_id)
    grid = await ctx.session.get(Node, case.grid_id) if case.grid_id else None
    tz = (grid.timezone if grid is not None else None) or ctx.timezone
    return compute_deadline(ctx.now(), category, case.urgency, tz)


def checkpoint(case: Case, stage: int) -> datetime | None:
    """When stage (0-based index into STAGES) falls due, or None past the last one."""
    if stage >= len(STAGES) or case.deadline_at is None or case.registered_at is None:
        return None
    span = case.deadline_at - case.registered_at
    return case.registered_at + span * STAGES[stage]


async def reset_checks(ctx: Ctx, case: Case) -> None:
    """A new deadline: the sweep starts again from the first checkpoint."""
    row = await ctx.session.get(CaseDeadline, case.id)
    if row is None:
        row = CaseDeadline(case_id=case.id)
        ctx.session.add(row)
    row.stage = 0
    row.next_check_at = checkpoint(case, 0)


async def stop_checks(ctx: Ctx, case: Case) -> None:
    """The case is done: nothing more to check (the stage stays, as the card it got)."""
    row = await ctx.session.get(CaseDeadline, case.id)
    if row is not None:
        row.next_check_at = None


async def stage_of(ctx: Ctx, case_ids: list[int]) -> dict[int, int]:
    """The stage each case has reached; cases never registered are absent (stage 0)."""
    if not case_ids:
        return {}
    return dict((await ctx.session.execute(
        select(CaseDeadline.case_id, CaseDeadline.stage).where(CaseDeadline.case_id.in_(case_ids)))).all())


def card_colour(stage: int) -> str | None:
    """The card a case holds now: the yellow card at stage YELLOW, the red at RED."""
    return "red" if stage >= RED else "yellow" if stage >= YELLOW else None


def carded(at_least: int) -> ColumnElement[bool]:
    """Cases whose stage is at least a yellow (YELLOW) or red (RED) card, as a filter on Case."""
    return Case.id.in_(select(CaseDeadline.case_id).where(CaseDeadline.stage >= at_least))
