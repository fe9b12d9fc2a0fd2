"""Time limits (限时办结): from category and urgency; the checkpoints the deadline sweep acts on."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from .context import Ctx
from .models import Case, Category, Node, Urgency

# share of the time limit at which each stage falls due: reminders, yellow card, red card
STAGES = (0.5, 0.8, 1.0, 2.0)
STAGE_NAMES = ("remind_50", "remind_80", "yellow_card", "red_card")
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


def reset_checks(case: Case) -> None:
    case.deadline_stage = 0
    case.next_check_at = checkpoint(case, 0)
