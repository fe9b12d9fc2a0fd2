"""The grid tree and who holds which role where."""

from __future__ import annotations

from collections.abc import Iterable

from shapely.geometry import shape
from sqlalchemy import select, text
from sqlalchemy.orm import defer

from . import geo
from .context import Ctx
from .errors import NotFound
from .i18n import _
from .models import Assignment, GroupBinding, Level, Node, Person, Role, TeamMember

DISPATCH_ROLES_HERE = {Role.leader, Role.standin, Role.centre_staff, Role.admin}
DISPATCH_ROLES_ABOVE = {Role.leader, Role.centre_staff, Role.admin}
# who acts on a node's case cards day to day, first the one who owns its work group
CARD_ACTORS = (Role.leader, Role.centre_staff, Role.standin)
GRID_LEVELS = {Level.grid, Level.micro_grid, Level.special_grid}
LEVEL_NAMES = {
    "city": "市",
    "district": "区",
    "street": "街道",
    "community": "社区",
    "grid": "网格",
    "micro_grid": "微网格",
    "special_grid": "专属网格",
}

# who acts on a node's cases, as people there call them (issue 9.9: not 网格长 at every level)
DISPATCHER_TITLES = {
    "city": _("市指挥中心工作人员"),
    "district": _("区指挥中心工作人员"),
    "street": _("街道中心工作人员"),
    "community": _("社区工作人员"),
}


def dispatcher_title(node: Node) -> str:
    """The message id naming the role that registers, dispatches and verifies at this node."""
    return DISPATCHER_TITLES.get(node.level, _("网格长"))


async def get_node(ctx: Ctx, node_id: int) -> Node:
    node = await ctx.session.get(Node, node_id)
    if node is None:
        raise NotFound("找不到该网格节点。")
    return node


async def node_by_code(ctx: Ctx, code: str) -> Node:
    node = (await ctx.session.execute(select(Node).where(Node.code == code))).scalar_one_or_none()
    if node is None:
        raise NotFound("找不到编码为 {code} 的网格节点。", code=code)
    return node


async def ancestors(ctx: Ctx, node: Node) -> list[Node]:
    """The node's parents, nearest first."""
    out: list[Node] = []
    seen = {node.id}
    parent_id = node.parent_id
    while parent_id is not None and parent_id not in seen:
        parent = await ctx.session.get(Node, parent_id)
        if parent is None:
            break
        out.append(parent)
        seen.add(parent.id)
        parent_id = parent.parent_id
    return out


async def children(ctx: Ctx, node_id: int) -> list[Node]:
    rows = await ctx.session.execute(select(Node).where(Node.parent_id == node_id).order_by(Node.code)
                                     .options(defer(Node.boundary, raiseload=True)))  # a district's polygon: not read
    return list(rows.scalars())


REPATH_SQL = """
    WITH RECURSIVE t(id, path) AS (
        SELECT id, '/' || CAST(id AS VARCHAR(20)) || '/' FROM node WHERE parent_id IS NULL
        UNION ALL
        SELECT n.id, t.path || CAST(n.id AS VARCHAR(20)) || '/' FROM node n JOIN t ON n.parent_id = t.id)
    UPDATE node SET path = (SELECT t.path FROM t WHERE t.id = node.id)"""


async def path_of(session, node_id: int) -> str:
    """The node's materialized path. Nodes written by raw SQL (bulk loads) may have none yet: then
    every path is computed once from parent_id (the same statement as migration 0016)."""
    path = (await session.execute(select(Node.path).where(Node.id == node_id))).scalar()
    if path is None:
        await session.execute(text(REPATH_SQL))
        path = (await session.execute(select(Node.path).where(Node.id == node_id))).scalar()
    return path or f"/{node_id}/"


async def descendants(ctx: Ctx, node_id: int) -> list[Node]:
    """Every node below, in one query on the materialized path; boundaries are not loaded."""
    path = await path_of(ctx.session, node_id)
    rows = await ctx.session.execute(
        select(Node).where(Node.path.like(path + "%"), Node.id != node_id)
        .order_by(Node.path).options(defer(Node.boundary, raiseload=True)))
    return list(rows.scalars())


async def street_of(ctx: Ctx, node: Node) -> Node:
    """The nearest street/town above (or the root) — case numbers carry its prefix."""
    for n in [node, *await ancestors(ctx, node)]:
        if n.level == Level.street:
            return n
    chain = [node, *await ancestors(ctx, node)]
    return chain[-1]


async def roles_of(ctx: Ctx, person_id: int) -> list[tuple[int, str]]:
    rows = await ctx.session.execute(
        select(Assignment.node_id, Assignment.role).where(Assignment.person_id == person_id)
    )
    return [(r[0], r[1]) for r in rows]


async def has_role(ctx: Ctx, person_id: int | None, node: Node, here: Iterable[str], above: Iterable[str]) -> bool:
    if person_id is None:
        return False
    held = await roles_of(ctx, person_id)
    if not held:
        return False
    here, above = set(here), set(above)
    if any(nid == node.id and role in here for nid, role in held):
        return True
    up = {n.id for n in await ancestors(ctx, node)}
    return any(nid in up and role in above for nid, role in held)


async def can_dispatch(ctx: Ctx, person_id: int | None, node: Node) -> bool:
    return await has_role(ctx, person_id, node, DISPATCH_ROLES_HERE, DISPATCH_ROLES_ABOVE)


async def people_with_role(ctx: Ctx, node_id: int, *roles: str) -> list[Person]:
    rows = await ctx.session.execute(
        select(Person)
        .join(Assignment, Assignment.person_id == Person.id)
        .where(Assignment.node_id == node_id, Assignment.role.in_(roles))
        .order_by(Person.code, Person.id)
    )
    return list(rows.scalars().unique())


async def leaders_of(ctx: Ctx, node_id: int) -> list[Person]:
    return await people_with_role(ctx, node_id, Role.leader, Role.centre_staff)


async def workers_of(ctx: Ctx, node_id: int) -> list[Person]:
    return await people_with_role(ctx, node_id, Role.worker)


async def team_member_ids(ctx: Ctx, team_id: int) -> list[int]:
    rows = await ctx.session.execute(select(TeamMember.person_id).where(TeamMember.team_id == team_id))
    return [r[0] for r in rows]


async def grids(ctx: Ctx) -> list[Node]:
    rows = await ctx.session.execute(select(Node).where(Node.level.in_(list(GRID_LEVELS))).order_by(Node.code))
    return list(rows.scalars())


async def grid_index(ctx: Ctx) -> geo.GridIndex:
    """Built once per database and kept until an import changes boundaries (geo.invalidate)."""
    key = str(ctx.session.bind.url) if ctx.session.bind is not None else None
    index = geo.cached_index(key)
    if index is None:
        index = geo.GridIndex([geo.GridShape(n.id, shape(n.boundary)) for n in await grids(ctx) if n.boundary])
        geo.store_index(key, index)
    return index


async def locate(ctx: Ctx, lat: float, lon: float, near_metres: float = 0) -> Node | None:
    """The grid whose boundary holds the WGS-84 point; the nearest within `near_metres` otherwise."""
    node_id = (await grid_index(ctx)).locate(lat, lon, near_metres)
    return await ctx.session.get(Node, node_id) if node_id is not None else None


async def active_bindings(ctx: Ctx, node_id: int) -> list[GroupBinding]:
    rows = await ctx.session.execute(
        select(GroupBinding).where(
            GroupBinding.node_id == node_id,
            GroupBinding.status == "active",
            GroupBinding.channel.in_(list(ctx.channels)),
        )
    )
    return list(rows.scalars())


def level_name(level: str) -> str:
    return LEVEL_NAMES.get(level, level)


async def grids_by_address(ctx: Ctx, address: str, *, by_name: bool = False) -> list[Node]:
    """The grids a typed address names: by their address keywords (小区、楼栋、路名 from the
    import) and, with `by_name`, by the grid's own name. Where several match, those naming the
    longest word (the most specific place) win; at most 10."""
    query = select(Node).where(Node.level.in_(list(GRID_LEVELS))).order_by(Node.code)
    if not by_name:
        query = query.where(Node.address_keywords.is_not(None))
    scored = []
    for node in (await ctx.session.execute(query.options(defer(Node.boundary, raiseload=True)))).scalars():
        words = [*(node.address_keywords or []), *([node.name] if by_name else [])]
        hits = [len(w) for w in words if w and w in address]
        if hits:
            scored.append((max(hits), node))
    best = max((score for score, _ in scored), default=0)
    return [node for score, node in scored if score == best][:10]
