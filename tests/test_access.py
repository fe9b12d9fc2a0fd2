"""Who may use which command, in-process on the test desk (handlers.access): the declaration on
each command, the work group's own staff, handler teams serving a grid."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from handlers import access, router
from workflows.models import Account, Person, Team, TeamMember

from .support import CH, Desk

pytestmark = pytest.mark.demo


@pytest.fixture
async def desk(sessionmaker, clock) -> Desk:
    d = Desk(sessionmaker, clock)
    await d.setup_chats()
    return d


def test_every_command_declares_a_known_audience():
    router._load_dialogues()
    from workflows.models import Role

    known = {str(r) for r in Role}
    for cmd in router.registry.COMMANDS.values():
        assert cmd.roles is None or (cmd.roles and cmd.roles <= known), cmd.name
    # what residents are offered in a private chat: nothing only staff may use
    resident = {c.name for c in access.commands_for(set(), "private")}
    assert {"report", "my", "case", "help"} <= resident
    assert not resident & {"diary", "patrol", "tasks", "notice", "leave"}


async def test_a_handler_team_member_without_a_node_role_is_staff_of_the_grids_it_serves(desk: Desk):
    async with desk.sm() as s, s.begin():
        team = (await s.execute(select(Team).where(Team.code == "T-CG"))).scalar_one()
        p = Person(code="CG-09", name="新队员", created_at=desk.clock.now())
        s.add(p)
        await s.flush()
        s.add_all([TeamMember(team_id=team.id, person_id=p.id),
                   Account(channel=CH, external_id="CG-09", chat_id="p:CG-09", person_id=p.id,
                           created_at=desk.clock.now())])
    await desk.send("CG-09", "/cases", group="CY-01")
    assert "在办事件" in (await desk.last("g:CY-01")).text
    await desk.send("CG-09", "/tasks")
    assert "没有使用" not in await desk.last_text("CG-09")
    await desk.send("CG-09", "/diary 今天")
    assert "没有使用 /diary 的权限" in await desk.last_text("CG-09")
    # a resident in the same group is not answered
    async with desk.sm() as s, s.begin():
        r = Person(name="居民甲", created_at=desk.clock.now())
        s.add(r)
        await s.flush()
        s.add(Account(channel=CH, external_id="r9", chat_id="p:r9", person_id=r.id, created_at=desk.clock.now()))
    before = len(await desk.messages("g:CY-01"))
    await desk.send("r9", "/cases", group="CY-01")
    await desk.send("r9", "/help", group="CY-01")
    assert len(await desk.messages("g:CY-01")) == before
