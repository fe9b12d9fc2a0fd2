"""A small office built directly for the routines tests (independent of the demo data), and
tests of the building blocks: claims, the deadline arithmetic, parsing."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import func, select

from workflows.clock import FixedClock
from workflows.context import Ctx
from workflows.errors import Invalid
from workflows.models import (
    Account,
    Assignment,
    Case,
    CaseEvent,
    Category,
    GroupBinding,
    Node,
    Outbox,
    Person,
    Team,
    TeamMember,
)
from workflows.routines.common import claim
from workflows.routines.deadlines import next_check, reached
from workflows.routines.leave import parse_day
from workflows.routines.models import RoutineMark
from workflows.routines.sweeps import run_sweep

from .support import Desk

CH = "test"
# a square around 翠苑一网格 (lon, lat)
BOX = {"type": "Polygon", "coordinates": [[[120.10, 30.28], [120.11, 30.28], [120.11, 30.29], [120.10, 30.29],
                                           [120.10, 30.28]]]}
INSIDE = (30.285, 120.105)  # lat, lon
FAR = (30.30, 120.13)  # ~2.5 km away


class World:
    """西湖街道 XH > 翠苑社区 CY > grids CY-01 (boundary, 2 workers), CY-02 (1 worker), CY-03 (no workers,
    no group). CY01-W1 and CY02-W1 are A/B partners. CY-C is community centre staff, XH-C street staff."""

    def __init__(self, sm, clock) -> None:
        self.sm, self.clock = sm, clock
        self.desk = Desk(sm, clock)

    async def setup(self) -> World:
        now = self.clock.now()
        async with self.sm() as s, s.begin():
            def node(code, name, level, parent=None, **kw):
                n = Node(code=code, name=name, level=level, parent_id=parent.id if parent else None, **kw)
                s.add(n)
                return n

            xh = node("XH", "西湖街道", "street", case_prefix="XH")
            await s.flush()
            cy = node("CY", "翠苑社区", "community", xh)
            await s.flush()
            g1 = node("CY-01", "翠苑一网格", "grid", cy, boundary=BOX, patrol_times=["09:00", "15:00"])
            g2 = node("CY-02", "翠苑二网格", "grid", cy)
            node("CY-03", "翠苑三网格", "grid", cy)
            await s.flush()
            people = {}
            for code, name in [("CY01-L", "张网格长"), ("CY01-W1", "王网格员"), ("CY01-W2", "赵网格员"),
                               ("CY02-W1", "钱网格员"), ("CY02-L", "孙网格长"), ("CY-C", "周社区"), ("XH-C", "吴街道"),
                               ("T1-L", "郑队长"), ("T1-M", "冯队员")]:
                p = Person(code=code, name=name, created_at=now)
                s.add(p)
                people[code] = p
            await s.flush()
            people["CY01-W1"].partner_id = people["CY02-W1"].id
            people["CY02-W1"].partner_id = people["CY01-W1"].id
            for code, n, role in [("CY01-L", g1, "leader"), ("CY01-W1", g1, "worker"), ("CY01-W2", g1, "worker"),
                                  ("CY02-W1", g2, "worker"), ("CY02-L", g2, "leader"), ("CY-C", cy, "centre_staff"),
                                  ("XH-C", xh, "centre_staff")]:
                s.add(Assignment(person_id=people[code].id, node_id=n.id, role=role))
            team = Team(code="T1", name="城管队", lead_id=people["T1-L"].id)
            s.add(team)
            await s.flush()
            s.add(TeamMember(team_id=team.id, person_id=people["T1-M"].id))
            s.add(TeamMember(team_id=team.id, person_id=people["T1-L"].id))
            for i, (code, name, hours) in enumerate([("MUNI", "市政设施", 72), ("FIRE", "消防安全隐患", 24),
                                                     ("ENV", "环境卫生", 48), ("OTHER", "其他", 72)]):
                s.add(Category(code=code, name=name, time_limit_hours=hours, sort=i, split="public", urgency="normal"))
            for n in (xh, cy, g1, g2):  # CY-03 has no bound group
                s.add(GroupBinding(node_id=n.id, channel=CH, chat_id=f"g:{n.code}", status="active", title=n.name,
                                   bound_at=now))
            for p in people.values():
                s.add(Account(channel=CH, external_id=p.code, chat_id=f"p:{p.code}", person_id=p.id, created_at=now))
        async with self.sm() as s:
            self.ids = {p.code: p.id for p in (await s.execute(select(Person))).scalars() if p.code}
            self.nodes = {n.code: n.id for n in (await s.execute(select(Node))).scalars()}
            self.cats = {c.name: c.id for c in (await s.execute(select(Category))).scalars()}
            self.teams = {t.code: t.id for t in (await s.execute(select(Team))).scalars()}
        return self

    def ctx(self, s) -> Ctx:
        return Ctx(session=s, clock=self.clock, channels=frozenset({CH}))

    async def do(self, fn, *args, **kw):
        async with self.sm() as s, s.begin():
            return await fn(self.ctx(s), *args, **kw)

    async def sweep(self, name: str, at: datetime | None = None):
        clock = FixedClock(at) if at else self.clock
        return await run_sweep(self.sm, name, clock=clock, channels=frozenset({CH}))

    async def texts(self, chat: str) -> list[str]:
        async with self.sm() as s:
            rows = await s.execute(select(Outbox.payload).where(Outbox.chat_id == chat).order_by(Outbox.id))
            return [p["text"] for p in rows.scalars()]

    async def outbox(self, **where) -> list[Outbox]:
        async with self.sm() as s:
            stmt = select(Outbox).order_by(Outbox.id)
            for k, v in where.items():
                stmt = stmt.where(getattr(Outbox, k) == v)
            return list((await s.execute(stmt)).scalars())

    async def count(self, model, *where) -> int:
        async with self.sm() as s:
            return (await s.execute(select(func.count()).select_from(model).where(*where))).scalar_one()

    async def events(self, action: str) -> list[CaseEvent]:
        async with self.sm() as s:
            return list((await s.execute(select(CaseEvent).where(CaseEvent.action == action))).scalars())

    async def case(self, case_id: int) -> Case:
        async with self.sm() as s:
            return await s.get(Case, case_id)


def local(y, mo, d, h, mi=0) -> datetime:
    """A Shanghai wall-clock time as an aware UTC datetime."""
    return datetime(y, mo, d, h - 8, mi, tzinfo=UTC) if h >= 8 else datetime(y, mo, d - 1, h + 16, mi, tzinfo=UTC)


@pytest.fixture
async def w(sessionmaker, clock) -> World:
    return await World(sessionmaker, clock).setup()


# ---------------------------------------------------------------- building blocks

async def test_claim_is_once(w: World):
    rows = [{"subject_id": 1, "slot": "a"}, {"subject_id": 2, "slot": "a"}]
    first = await w.do(claim, "k", rows)
    second = await w.do(claim, "k", rows + [{"subject_id": 3, "slot": "a"}])
    assert first == {(1, "a"), (2, "a")}
    assert second == {(3, "a")}
    assert await w.count(RoutineMark) == 3


def test_deadline_stages_jump_to_the_last_crossed():
    reg = datetime(2026, 11, 23, tzinfo=UTC)
    dl = reg + timedelta(hours=72)
    assert reached(reg, dl, reg + timedelta(hours=35), 0) == 0
    assert reached(reg, dl, reg + timedelta(hours=36), 0) == 1
    assert reached(reg, dl, reg + timedelta(hours=73), 0) == 3  # catch-up: straight to the yellow card
    assert reached(reg, dl, reg + timedelta(hours=200), 3) == 4
    assert next_check(reg, dl, 1) == reg + timedelta(hours=57.6)
    assert next_check(reg, dl, 4) is None


def test_parse_day():
    today = date(2026, 11, 23)
    assert parse_day("2026-11-25", today) == date(2026, 11, 25)
    assert parse_day("11-25", today) == date(2026, 11, 25)
    assert parse_day("01-03", today) == date(2027, 1, 3)  # early next year, not ten months ago
    with pytest.raises(Invalid):
        parse_day("25/11", today)
    with pytest.raises(Invalid):
        parse_day("02-30", today)


def test_local_helper():
    assert local(2026, 11, 23, 9) == datetime(2026, 11, 23, 1, tzinfo=UTC)
    assert local(2026, 11, 23, 7) == datetime(2026, 11, 22, 23, tzinfo=UTC)
