"""The operator's health view of the tree: who holds which role where, A/B partners, work-group
bindings, and who the bot cannot reach (no linked chat account, or every account marked
undeliverable by delivery — `accounts.unreachable` records a blocked bot that way).
Read-only, limited to the viewer's scope."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import defer

from . import scope
from .cards import mask_phone
from .context import Ctx
from .i18n import _
from .models import Account, Assignment, GroupBinding, Node, Person
from .tree import DISPATCH_ROLES_ABOVE, DISPATCH_ROLES_HERE, GRID_LEVELS

ROLE_LABELS = {
    "worker": _("网格员"),
    "leader": _("网格长"),
    "standin": _("代班"),
    "team_member": _("处置员"),
    "centre_staff": _("中心工作人员"),
    "helper": _("楼栋长/志愿者"),
    "admin": _("管理员"),
}
NO_ACCOUNT = "no_account"
BLOCKED = "blocked"


@dataclass
class Member:
    person_id: int
    code: str | None
    name: str
    phone: str
    roles: list[str]
    partner: str | None
    channels: list[str]  # channels with a reachable account
    unreachable: str | None  # NO_ACCOUNT | BLOCKED | None
    errors: list[str] = field(default_factory=list)  # the last failure of each undeliverable account


@dataclass
class Binding:
    channel: str
    title: str | None
    status: str  # active | broken


@dataclass
class NodeHealth:
    node: Node
    depth: int
    members: list[Member]
    bindings: list[Binding]

    @property
    def has_group(self) -> bool:
        return any(b.status == "active" for b in self.bindings)

    @property
    def unreachable(self) -> int:
        return sum(1 for m in self.members if m.unreachable)


async def tree_health(ctx: Ctx, viewer_id: int, paths: list[str],
                      channels: frozenset[str] | None = None) -> list[NodeHealth]:
    """Every node in the scope `paths` (the viewer's) in tree order, with its people and bindings. `channels`
    are the ones this deployment runs: an account on another channel reaches nobody."""
    if not paths:
        return []
    nodes = _tree_order(list((await ctx.session.execute(
        select(Node).where(Node.id.in_(scope.nodes_under(paths))).order_by(Node.path)
        .options(defer(Node.boundary, raiseload=True)))).scalars()))
    ids = [n.id for n in nodes]
    held: dict[int, dict[int, list[str]]] = defaultdict(lambda: defaultdict(list))
    for node_id, person_id, role in await ctx.session.execute(
            select(Assignment.node_id, Assignment.person_id, Assignment.role)
            .where(Assignment.node_id.in_(ids)).order_by(Assignment.id)):
        held[node_id][person_id].append(role)
    person_ids = {p for by in held.values() for p in by}
    people = {p.id: p for p in (await ctx.session.execute(
        select(Person).where(Person.id.in_(person_ids)))).scalars()} if person_ids else {}
    partner_ids = {p.partner_id for p in people.values() if p.partner_id} - set(people)
    partners = dict((await ctx.session.execute(
        select(Person.id, Person.name).where(Person.id.in_(partner_ids)))).all()) if partner_ids else {}
    partners.update({p.id: p.name for p in people.values()})
    accounts: dict[int, list[Account]] = defaultdict(list)
    if person_ids:
        for a in (await ctx.session.execute(select(Account).where(Account.person_id.in_(person_ids)))).scalars():
            if channels is None or a.channel in channels:
                accounts[a.person_id].append(a)
    bindings: dict[int, list[Binding]] = defaultdict(list)
    for b in (await ctx.session.execute(
            select(GroupBinding).where(GroupBinding.node_id.in_(ids)).order_by(GroupBinding.id))).scalars():
        bindings[b.node_id].append(Binding(b.channel, b.title, b.status))

    top = min(n.path.count("/") for n in nodes)
    full_at = await dispatch_scope(ctx, viewer_id)
    out = []
    for node in nodes:
        full = full_at(node)
        members = []
        for pid, roles in held[node.id].items():
            p = people[pid]
            mine = accounts.get(pid, [])
            ok = sorted({a.channel for a in mine if not a.undeliverable})
            state = None if ok else (BLOCKED if mine else NO_ACCOUNT)
            members.append(Member(pid, p.code, p.name, (p.phone or "") if full else mask_phone(p.phone), roles,
                                  partners.get(p.partner_id) if p.partner_id else None, ok, state,
                                  [a.undeliverable for a in mine if a.undeliverable]))
        members.sort(key=lambda m: (min(_ROLE_ORDER.get(r, 9) for r in m.roles), m.code or "", m.person_id))
        out.append(NodeHealth(node, node.path.count("/") - top, members, bindings.get(node.id, [])))
    return out


async def dispatch_scope(ctx: Ctx, person_id: int):
    """`tree.can_dispatch` for many nodes at once: a test for a node (with its path) answering
    whether the person dispatches there — a dispatch role on an ancestor or the node itself, or
    a stand-in's role on the node itself. Two queries, however many nodes are asked about."""
    above = await scope.staff_paths(ctx, person_id, DISPATCH_ROLES_ABOVE)
    here_only = set((await ctx.session.execute(select(Assignment.node_id).where(
        Assignment.person_id == person_id,
        Assignment.role.in_(list(DISPATCH_ROLES_HERE - DISPATCH_ROLES_ABOVE))))).scalars())
    return lambda node: node.id in here_only or scope.covers(above, node.path or "")


def _tree_order(nodes: list[Node]) -> list[Node]:
    """Parents before children, siblings by code (a path of ids sorts /10/ before /9/)."""
    by_id = {n.id: n for n in nodes}
    keys: dict[int, tuple] = {}

    def key(n: Node) -> tuple:
        if n.id not in keys:
            parent = by_id.get(n.parent_id)
            keys[n.id] = (*(key(parent) if parent is not None else ()), n.code)
        return keys[n.id]

    return sorted(nodes, key=key)


_ROLE_ORDER = {r: i for i, r in enumerate(("centre_staff", "leader", "standin", "worker", "helper", "team_member",
                                           "admin"))}


def needs_group(h: NodeHealth) -> bool:
    """A grid (or a node with staff) without an active work group: its cards go nowhere."""
    return not h.has_group and (h.node.level in GRID_LEVELS or bool(h.members))
