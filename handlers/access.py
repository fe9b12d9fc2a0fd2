"""Who may use a command: declared on each command (registry.command(roles=…)), checked here only.

A command's `roles` is None for everyone, or the roles (on any node) that may use it. In a bound
work group only the node's own staff — a role on the group's node, above it or below it — get an
answer at all: a stranger who is a member of the group is not answered, and the group is told
once that they are there (`stranger_joined`). /help and the per-person command menus list
exactly what `allowed` lets through, so what a person is offered is what they may do.
"""

from __future__ import annotations

from sqlalchemy import bindparam, exists, literal, select, union_all

from workflows.models import Assignment, GroupBinding, Node, TeamGrid, TeamMember
from workflows.tree import ancestors, descendants

from . import registry
from .turn import Turn


def usable(cmd: registry.Command, roles: set[str], where: str) -> bool:
    """Whether someone holding `roles` (empty for a resident) may use cmd in a private chat or group."""
    if not (cmd.group if where == "group" else cmd.private):
        return False
    return cmd.roles is None or bool(roles & cmd.roles)


def commands_for(roles: set[str], where: str) -> list[registry.Command]:
    return [c for c in registry.COMMANDS.values() if usable(c, roles, where)]


async def roles(turn: Turn) -> set[str]:
    if turn.person is None:
        return set()
    rows = await turn.session.execute(_ROLES, {"person": turn.person.id})
    return {str(r) for r in rows.scalars()}


# built once, one statement: it runs for every command (building an expression costs about as
# much as running it)
_ROLES = union_all(
    select(Assignment.role).where(Assignment.person_id == bindparam("person")),
    # on a handler team, whether or not the import gave a node role too
    select(literal("team_member")).where(exists().where(TeamMember.person_id == bindparam("person"))))


async def allowed(turn: Turn, cmd: registry.Command) -> bool:
    return usable(cmd, await roles(turn), "group" if turn.inbound.is_group else "private")


async def group_node(turn: Turn) -> Node | None:
    i = turn.inbound
    node_id = (await turn.session.execute(
        select(GroupBinding.node_id).where(GroupBinding.channel == i.channel, GroupBinding.chat_id == i.chat_id,
                                           GroupBinding.status == "active")
    )).scalar_one_or_none()
    return await turn.session.get(Node, node_id) if node_id is not None else None


async def is_node_staff(turn: Turn, node: Node) -> bool:
    """A role on the node, an ancestor (upper-level centre staff) or a descendant (a grid's leader in
    the community's group), or a member of a handler team serving one of those."""
    if turn.person is None:
        return False
    held = set((await turn.session.execute(
        select(Assignment.node_id).where(Assignment.person_id == turn.person.id))).scalars())
    # a handler team's members belong to the groups of the grids their team serves
    held |= set((await turn.session.execute(
        select(TeamGrid.node_id).join(TeamMember, TeamMember.team_id == TeamGrid.team_id)
        .where(TeamMember.person_id == turn.person.id))).scalars())
    if not held:
        return False
    if node.id in held or held & {n.id for n in await ancestors(turn.ctx, node)}:
        return True
    return bool(held & {n.id for n in await descendants(turn.ctx, node.id)})


async def answers_in_group(turn: Turn) -> bool:
    """In a bound work group, the bot answers the node's staff only."""
    node = await group_node(turn)
    return node is not None and await is_node_staff(turn, node)
