"""What the console's map draws: grid boundaries and case points as GeoJSON, and a grid's notice card.

Everything is limited to the viewer's scope (workflows.scope: the subtrees of the nodes they
hold a staff role on — the rule `cases.can_view` applies to one case) and converted from the stored WGS-84 to
the datum of the tile server the map is drawn on (workflows.geo).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Select, and_, func, select

from . import geo, scope
from .cards import STATUS_LABELS, mask_name, mask_phone
from .context import Ctx
from .deadlines import RED, YELLOW, card_colour
from .errors import NotFound
from .i18n import T
from .models import OPEN_STATUSES, Case, CaseDeadline, Category, Node, Person
from .notice_card import notice_card
from .tree import GRID_LEVELS, can_dispatch, leaders_of, workers_of

MAX_POINTS = 5000  # newest first; the map says when there are more (narrow the filter)
PHONE_RE = re.compile(r"(?<!\d)1\d{10}(?!\d)")


def grids_in_scope(paths: list[str]) -> Select:
    return select(Node.id).where(Node.level.in_(list(GRID_LEVELS)), Node.id.in_(scope.nodes_under(paths)))


async def grid_layer(ctx: Ctx, paths: list[str], crs: str = "wgs84") -> dict:
    """The boundaries of the grids in the scope `paths` (scope.staff_paths), as GeoJSON in `crs`."""
    crs = geo.check_crs(crs)
    rows = await ctx.session.execute(
        select(Node.id, Node.code, Node.name, Node.boundary)
        .where(Node.id.in_(grids_in_scope(paths)), Node.boundary.is_not(None)).order_by(Node.code))
    return {"type": "FeatureCollection", "features": [
        {"type": "Feature", "id": nid, "geometry": geo.geometry_from_wgs84(boundary, crs),
         "properties": {"id": nid, "code": code, "name": name}}
        for nid, code, name, boundary in rows]}


@dataclass
class CaseFilter:
    """What the map's controls narrow the points to. Empty means no narrowing."""

    status: str = "open"  # open | closed | all | one CaseStatus
    overdue: bool = False
    card: str | None = None  # yellow | red (at least that card now)
    category_id: int | None = None
    since: datetime | None = None
    node_ids: list[int] = field(default_factory=list)  # within these nodes' subtrees (still in scope)


async def case_layer(ctx: Ctx, paths: list[str], crs: str = "wgs84", filters: CaseFilter | None = None,
                     t: T | None = None) -> dict:
    """The located cases in the scope `paths`, newest first, as GeoJSON points in `crs`.

    A case is in scope when its grid or the level now holding it is (the two nodes `can_view`
    looks at). Properties carry what the map colours by: status, overdue and card."""
    crs = geo.check_crs(crs)
    f = filters or CaseFilter()
    now = ctx.now()
    q = (select(Case.id, Case.number, Case.status, Case.latitude, Case.longitude, Case.deadline_at,
                func.coalesce(CaseDeadline.stage, 0), Case.created_at, Case.grid_id, Category.name, Category.name_en,
                Node.name)
         .join(Node, Node.id == Case.grid_id).join(Category, Category.id == Case.category_id)
         .outerjoin(CaseDeadline, CaseDeadline.case_id == Case.id)
         .where(Case.latitude.is_not(None), Case.longitude.is_not(None), scope.case_clause(paths)))
    open_ = [str(s) for s in OPEN_STATUSES]
    if f.status == "open":
        q = q.where(Case.status.in_(open_))
    elif f.status == "closed":
        q = q.where(Case.status.not_in(open_))
    elif f.status != "all":
        q = q.where(Case.status == f.status)
    if f.overdue:
        q = q.where(Case.status.in_(open_), Case.deadline_at < now)
    if f.card:
        q = q.where(Case.status.in_(open_), CaseDeadline.stage >= (RED if f.card == "red" else YELLOW))
    if f.category_id:
        q = q.where(Case.category_id == f.category_id)
    if f.since:
        q = q.where(Case.created_at >= f.since)
    if f.node_ids:
        narrowed = select(Node.path).where(Node.id.in_(f.node_ids))
        q = q.where(Case.grid_id.in_(scope.nodes_under([p for p in (await ctx.session.execute(narrowed)).scalars() if p])))
    rows = list(await ctx.session.execute(q.order_by(Case.created_at.desc(), Case.id.desc()).limit(MAX_POINTS + 1)))
    features = []
    english = t is not None and t.language == "en"
    for cid, number, status, lat, lon, deadline, stage, created, grid_id, category, category_en, grid_name in rows[:MAX_POINTS]:
        y, x = geo.from_wgs84(lat, lon, crs)
        overdue = deadline is not None and status in open_ and now > deadline
        features.append({"type": "Feature", "id": cid, "geometry": {"type": "Point", "coordinates": [x, y]},
                         "properties": {"id": cid, "number": number, "status": status,
                                        "status_label": t(STATUS_LABELS.get(status, status)) if t else status,
                                        "open": status in open_, "overdue": overdue,
                                        "card": card_colour(stage) if status in open_ else None,
                                        "category": category_en if english and category_en else category, "grid_id": grid_id, "grid": grid_name,
                                        "created_at": created.isoformat()}})
    return {"type": "FeatureCollection", "features": features, "truncated": len(rows) > MAX_POINTS}


# ---------------------------------------------------------------- a grid's card on the map

@dataclass
class CardPerson:
    name: str
    phone: str
    partner: str | None = None


@dataclass
class GridCard:
    id: int
    code: str
    name: str
    notice: str
    leaders: list[CardPerson]
    workers: list[CardPerson]
    open_cases: int
    overdue: int
    week: object  # routines.stats.Stats: this week so far, the figures /stats shows
    full_phones: bool


async def grid_card(ctx: Ctx, t: T, viewer_id: int, paths: list[str], grid_id: int) -> GridCard:
    """The notice card of a grid the viewer sees. Phone numbers are shown in full to those who
    dispatch there (leaders, centre staff above) and masked for everyone else — the rule the
    case cards follow for a reporter's number. A grid outside the scope is not found."""
    from .routines.reports import week_so_far

    node = await ctx.session.get(Node, grid_id)
    if node is None or node.level not in GRID_LEVELS or not await scope.node_covered(ctx, paths, node):
        raise NotFound("找不到该网格节点。")
    full = await can_dispatch(ctx, viewer_id, node)
    phone = (lambda p: p or "") if full else mask_phone
    name = (lambda n: n) if full else mask_name

    async def people(found: list[Person]) -> list[CardPerson]:
        partners = {p.partner_id for p in found if p.partner_id}
        names = dict((await ctx.session.execute(
            select(Person.id, Person.name).where(Person.id.in_(partners)))).all()) if partners else {}
        return [CardPerson(name(p.name), phone(p.phone),
                           name(names[p.partner_id]) if p.partner_id in names else None) for p in found]

    text = await notice_card(ctx, t, node.code)
    if not full:
        text = PHONE_RE.sub(lambda m: mask_phone(m.group(0)), text)
    open_ = [str(s) for s in OPEN_STATUSES]
    here = and_(Case.grid_id == node.id, Case.status.in_(open_))
    open_n = (await ctx.session.execute(select(func.count()).where(here))).scalar_one()
    overdue = (await ctx.session.execute(select(func.count()).where(here, Case.deadline_at < ctx.now()))).scalar_one()
    _start, _end, week, _rows = await week_so_far(ctx, node)
    return GridCard(node.id, node.code, node.name, text, await people(await leaders_of(ctx, node.id)),
                    await people(await workers_of(ctx, node.id)), open_n, overdue, week, full)
