"""The care register (结对关爱) and visits (定期走访): who may see it, whose list a visit is on,
what a visit changes.

Privacy: names and conditions are shown only to the grid's staff and the levels above (may_see),
and every look is a care_access row (log_access). Nothing here writes to a group; a case opened
by a visit carries the household's short code and the worker's own words only.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from sqlalchemy import insert, select

from .care_models import CareAccess, CareHousehold, CarePerson, CareVisit
from .context import Ctx
from .errors import Invalid, NotAllowed, NotFound
from .models import Node, Person, Role
from .routines.common import is_pg, local_now, pg_insert_unnest
from .routines.leave import covers_on
from .routines.patrols import NEAR_METRES, location_warning
from .tree import get_node, has_role

# visit frequency (days) by care type when the register gives none: 独居 weekly, most twice a month
CARE_TYPES = {"独居老人": 7, "空巢老人": 14, "重度残疾": 14, "留守儿童": 14, "低保": 30, "困难家庭": 30}
DEFAULT_FREQUENCY = 30
FREQUENCY_WORDS = {"每周": 7, "weekly": 7, "每两周": 14, "半月": 15, "每半月": 15, "twice_monthly": 15,
                   "每月": 30, "monthly": 30, "每季度": 90, "quarterly": 90}
RETRY_DAYS = 2  # "not at home": try again within days
SITUATIONS = ("fine", "help", "absent")
SEE_HERE = {Role.worker, Role.leader, Role.standin, Role.centre_staff, Role.admin}
SEE_ABOVE = {Role.leader, Role.centre_staff, Role.admin}
ACCESS_PG = (("at", "timestamptz"), ("viewer_id", "bigint"), ("care_person_id", "bigint"), ("what", "text"),
             ("channel", "text"))


def default_frequency(care_type: str) -> int:
    return CARE_TYPES.get(care_type, DEFAULT_FREQUENCY)


def frequency_days(value: object, care_type: str) -> int:
    """A frequency word (每周, monthly …) or a number of days; the care type's default when empty."""
    if value is None or value == "":
        return default_frequency(care_type)
    if isinstance(value, int) and not isinstance(value, bool):
        days = value
    elif str(value).strip() in FREQUENCY_WORDS:
        days = FREQUENCY_WORDS[str(value).strip()]
    elif str(value).strip().isdigit():
        days = int(str(value).strip())
    else:
        raise ValueError(f"unknown frequency {value!r} (a number of days or one of: {', '.join(FREQUENCY_WORDS)})")
    if not 1 <= days <= 366:
        raise ValueError("frequency must be between 1 and 366 days")
    return days


def today(ctx: Ctx, tz: str | None = None) -> date:
    return local_now(ctx, tz).date()


async def may_see(ctx: Ctx, viewer_id: int | None, node: Node) -> bool:
    """The grid's own staff and the levels above; residents, team members and helpers never."""
    return await has_role(ctx, viewer_id, node, SEE_HERE, SEE_ABOVE)


async def log_access(ctx: Ctx, viewer_id: int | None, care_person_ids: list[int], what: str) -> None:
    await log_accesses(ctx, [(viewer_id, care_person_ids)], what)


async def log_accesses(ctx: Ctx, views: list[tuple[int | None, list[int]]], what: str) -> None:
    """Many viewers' looks in one statement (a sweep's reminders)."""
    now = ctx.now()
    rows = [{"at": now, "viewer_id": viewer, "care_person_id": cid, "what": what, "channel": ctx.via_channel}
            for viewer, ids in views for cid in ids or [None]]
    if rows and is_pg(ctx):  # a handful of parameters however many rows (routines.common)
        await pg_insert_unnest(ctx, "care_access", ACCESS_PG, rows)
    elif rows:
        await ctx.session.execute(insert(CareAccess), rows)


@dataclass
class Entry:
    """One person on a worker's visit list, with the household and whose list it is."""

    person: CarePerson
    household: CareHousehold
    for_person_id: int  # the responsible worker (the actor, or the partner they cover)


async def visit_list(ctx: Ctx, worker_id: int, *, covering: bool = True) -> list[Entry]:
    """The worker's own people and, while a partner is on leave, the partner's — due first."""
    whose = [worker_id]
    if covering:
        whose += [w for w, cover in (await covers_on(ctx, today(ctx))).items() if cover == worker_id]
    rows = await ctx.session.execute(
        select(CarePerson, CareHousehold).join(CareHousehold, CareHousehold.id == CarePerson.household_id)
        .where(CarePerson.worker_id.in_(whose), CarePerson.active.is_(True))
        .order_by(CarePerson.next_due, CareHousehold.code, CarePerson.code))
    return [Entry(p, h, p.worker_id) for p, h in rows]


async def entry_for(ctx: Ctx, actor_id: int, care_person_id: int) -> Entry:
    for e in await visit_list(ctx, actor_id):
        if e.person.id == care_person_id:
            return e
    raise NotAllowed("该关爱对象不在您的走访名单上。")


async def detail(ctx: Ctx, viewer_id: int, care_person_id: int) -> tuple[CarePerson, CareHousehold, Node,
                                                                         list[CareVisit]]:
    """A person's record for someone allowed to see it — recorded in the access log."""
    person = await ctx.session.get(CarePerson, care_person_id)
    if person is None:
        raise NotFound("找不到该关爱对象。")
    household = await ctx.session.get(CareHousehold, person.household_id)
    node = await get_node(ctx, household.node_id)
    # the A/B partner covering a worker on leave sees the people on that worker's list
    covering = any(e.person.id == person.id for e in await visit_list(ctx, viewer_id)) if viewer_id else False
    if not covering and not await may_see(ctx, viewer_id, node):
        raise NotAllowed("只有 {node} 的网格工作人员和上级可以查看关爱对象的信息。", node=node.name)
    visits = list((await ctx.session.execute(
        select(CareVisit).where(CareVisit.care_person_id == person.id)
        .order_by(CareVisit.at.desc(), CareVisit.id.desc()).limit(5))).scalars())
    await log_access(ctx, viewer_id, [person.id], "detail")
    return person, household, node, visits


def distance_to_household(household: CareHousehold, lat: float, lon: float) -> float | None:
    if household.latitude is None or household.longitude is None:
        return None
    from math import cos, radians

    dy = (lat - household.latitude) * 111_000
    dx = (lon - household.longitude) * 111_000 * cos(radians(lat))
    return (dx * dx + dy * dy) ** 0.5


def check_location(household: CareHousehold, node: Node, lat: float | None,
                   lon: float | None) -> tuple[float | None, str | None]:
    """Metres from the household (or the grid) and a warning; far from the household is refused."""
    if lat is not None and lon is not None:
        d = distance_to_household(household, lat, lon)
        if d is not None:
            if d > NEAR_METRES:
                raise Invalid("您的位置距 {code} 约 {d} 米，请到户后再登记走访；无法定位请点击「无法定位」。",
                              code=household.code, d=f"{d:.0f}")
            return d, None
    return location_warning(node, lat, lon)


async def record_visit(ctx: Ctx, actor_id: int, care_person_id: int, situation: str, *,
                       notes: str | None = None, latitude: float | None = None, longitude: float | None = None,
                       photos: list | None = None) -> CareVisit:
    """Record a visit; "help" opens a case (source visit), "absent" comes back within RETRY_DAYS."""
    from . import cases
    from .routines.patrols import category_for

    if situation not in SITUATIONS:
        raise Invalid("走访情况只能是：正常、需要帮助、不在家。")
    notes = (notes or "").strip() or None
    if notes and len(notes) > 1000:
        raise Invalid("走访记录太长了，请控制在 1000 字以内。")
    if situation == "help" and not notes:
        raise Invalid("请写明需要什么帮助。")
    entry = await entry_for(ctx, actor_id, care_person_id)
    person, household = entry.person, entry.household
    node = await get_node(ctx, household.node_id)
    distance, warning = check_location(household, node, latitude, longitude)
    day = today(ctx, node.timezone)
    visit = CareVisit(care_person_id=person.id, household_id=household.id, person_id=actor_id,
                      for_person_id=entry.for_person_id, at=ctx.now(), day=day, due=person.next_due,
                      situation=situation, notes=notes, photos=list(photos or []), latitude=latitude,
                      longitude=longitude, distance_m=distance, warning=warning)
    ctx.session.add(visit)
    person.next_due = day + timedelta(days=RETRY_DAYS if situation == "absent" else person.frequency_days)
    if situation == "help":
        # the card goes to the work group: the household's code and the worker's words, no name or condition
        case = await cases.report(
            ctx, reporter_id=actor_id, category_id=await category_for(ctx, "困难帮扶"),
            description=f"【走访发现】{household.code} 需要帮助：{notes}", grid_id=node.id,
            attachments=list(photos or []), latitude=latitude, longitude=longitude, source="visit")
        visit.case_id = case.id
    await log_access(ctx, actor_id, [person.id], "visit")
    await ctx.session.flush()
    return visit


async def access_log(ctx: Ctx, person_code: str) -> tuple[CarePerson, list[tuple[CareAccess, str | None]]]:
    """Who looked at this person's record, newest first (for `gridbot audit access`)."""
    person = (await ctx.session.execute(select(CarePerson).where(CarePerson.code == person_code))
              ).scalar_one_or_none()
    if person is None:
        raise NotFound("找不到编码为 {code} 的关爱对象。", code=person_code)
    rows = await ctx.session.execute(
        select(CareAccess, Person.name).outerjoin(Person, Person.id == CareAccess.viewer_id)
        .where(CareAccess.care_person_id == person.id).order_by(CareAccess.at.desc(), CareAccess.id.desc()))
    return person, [(a, name) for a, name in rows]
