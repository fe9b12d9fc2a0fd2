"""What a person's staff roles let them see: the subtrees of the nodes they hold those roles on.

One rule, two forms. `covers` answers for one node (the chat's `cases.can_view`); `case_where`
(and `case_clause`) is the same rule as SQL for lists (the web console): a node is covered when its materialized
path (`Node.path`, "/<root>/…/<id>/") starts with the path of a node where the person holds a
staff role — the node itself or any ancestor, exactly what `tree.has_role(here=…, above=…)`
walks up the parent ids to find.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import ColumnElement, false, or_, select
from sqlalchemy.orm import aliased

from .context import Ctx
from .models import Assignment, Case, Node
from .tree import path_of

# who sees a node's cases and everything below it (team members follow their own cases only)
VIEW_ROLES = frozenset({"leader", "standin", "worker", "centre_staff", "admin", "helper"})


async def staff_paths(ctx: Ctx, person_id: int | None, roles: Iterable[str] = VIEW_ROLES) -> list[str]:
    """The paths of the nodes where the person holds one of `roles`, without those already inside
    another (a district's path covers its streets')."""
    if person_id is None:
        return []
    ids = (await ctx.session.execute(select(Assignment.node_id).where(
        Assignment.person_id == person_id, Assignment.role.in_(list(roles))))).scalars().all()
    paths = sorted({await path_of(ctx.session, nid) for nid in set(ids)}, key=len)
    out: list[str] = []
    for p in paths:
        if not any(p.startswith(q) for q in out):
            out.append(p)
    return out


def covers(paths: Iterable[str], node_path: str) -> bool:
    return any(node_path.startswith(p) for p in paths)


async def node_covered(ctx: Ctx, paths: list[str], node: Node) -> bool:
    return covers(paths, node.path or await path_of(ctx.session, node.id))


def nodes_under(paths: Iterable[str]):
    """SELECT node.id of every node in the subtrees (ix_node_path serves each LIKE)."""
    conds = [Node.path.like(p + "%") for p in paths]
    return select(Node.id).where(or_(*conds) if conds else false())


def case_clause(paths: list[str]) -> ColumnElement[bool]:
    """Cases whose grid, or whose holding level, lies in the subtrees — `can_view`'s node rule."""
    if not paths:
        return false()
    under = nodes_under(paths)
    return or_(Case.grid_id.in_(under), Case.level_node_id.in_(under))


def case_where(paths: list[str], within: str | None = None, dialect: str | None = None) -> list[ColumnElement[bool]]:
    """The same rule as WHERE conditions for a long list, in the form each database plans well
    (bench.console, 100,000 cases): PostgreSQL filters an index scan with hashed sub-plans of the
    subtree's node ids (`case_clause`); SQLite would look every such id up one by one, so there
    each case is joined to its grid and holding node (two aliases of `node`) and the cases are
    walked in the order asked. `within`: also inside this node path (checked by the caller)."""
    if not paths:
        return [false()]
    if dialect != "sqlite":
        out = [case_clause(paths)]
        if within:
            under = nodes_under([within])
            out.append(or_(Case.grid_id.in_(under), Case.level_node_id.in_(under)))
        return out
    grid, held = aliased(Node), aliased(Node)
    out = [grid.id == Case.grid_id, held.id == Case.level_node_id,
           or_(*[grid.path.like(p + "%") for p in paths], *[held.path.like(p + "%") for p in paths])]
    if within:
        out.append(or_(grid.path.like(within + "%"), held.path.like(within + "%")))
    return out
