"""One scope rule in two forms (workflows/scope.py): for every person of the demo street and cases
held at every level, the SQL form (the console's list) selects exactly the cases whose grid or
holding node the chat's role walk (`tree.has_role`, up the parent ids) says the person covers —
and `cases.can_view` answers as it did before it used scope.py."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from workflows import cases, scope
from workflows.context import Ctx
from workflows.models import Case, Category, Node, Person
from workflows.tree import has_role

from .support import MovingClock

pytestmark = pytest.mark.demo

STAFF = {"leader", "standin", "worker", "centre_staff", "admin", "helper"}


async def test_sql_scope_and_can_view_agree_with_the_role_walk(sessionmaker):
    async with sessionmaker() as s, s.begin():
        ctx = Ctx(session=s, clock=MovingClock())
        nodes = list((await s.execute(select(Node).order_by(Node.id))).scalars())
        by_code = {n.code: n for n in nodes}
        cat = (await s.execute(select(Category).order_by(Category.id).limit(1))).scalar_one()
        made = []
        # one case in every grid, then some held higher up (escalated, direct-reported) or lower
        for n in nodes:
            if n.level == "grid":
                made.append(await cases.report(ctx, reporter_id=None, category_id=cat.id, description="测试",
                                               grid_id=n.id))
        made[0].level_node_id = by_code["CY"].id
        made[1].level_node_id = by_code["XH"].id
        made[2].level_node_id = by_code["SFS"].id
        made[3].grid_id, made[3].level_node_id = by_code["WX-01"].id, by_code["CY"].id  # moved across
        await s.flush()
        people = list((await s.execute(select(Person))).scalars())
        assert len(people) > 20
        for person in people:
            paths = await scope.staff_paths(ctx, person.id)
            listed = set((await s.execute(select(Case.id).where(scope.case_clause(paths)))).scalars())
            joined = set((await s.execute(select(Case.id).where(*scope.case_where(paths)))).scalars())
            assert joined == listed, person.code
            for case in made:
                grid, level = await s.get(Node, case.grid_id), await s.get(Node, case.level_node_id)
                walk = (await has_role(ctx, person.id, grid, STAFF, STAFF)
                        or await has_role(ctx, person.id, level, STAFF, STAFF))
                assert (case.id in listed) == walk, (person.code, case.number)
                own = case.reporter_id == person.id or await cases.is_assignee(ctx, person.id, case)
                assert await cases.can_view(ctx, person.id, case) == (walk or own), (person.code, case.number)


async def test_paths_drop_nested_nodes(sessionmaker):
    async with sessionmaker() as s, s.begin():
        ctx = Ctx(session=s, clock=MovingClock())
        from workflows.models import Assignment

        person = (await s.execute(select(Person).where(Person.code == "CY-L"))).scalar_one()
        grid = (await s.execute(select(Node).where(Node.code == "CY-01"))).scalar_one()
        community = (await s.execute(select(Node).where(Node.code == "CY"))).scalar_one()
        s.add(Assignment(person_id=person.id, node_id=grid.id, role="helper"))
        await s.flush()
        assert await scope.staff_paths(ctx, person.id) == [community.path]
        assert await scope.staff_paths(ctx, None) == []
        assert scope.covers([community.path], grid.path) and not scope.covers([grid.path], community.path)
