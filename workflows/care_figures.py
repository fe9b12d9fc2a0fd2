"""Visit coverage (走访按期率): care visits done on time / visits due, per grid or per worker.

The one count behind /stats, the weekly report, the monthly ranking and the 考核表 (they call
add_visits on the figures they already have). Over the local days first..last:

- due: each (person, due date) in the period that a visit answered — except "not at home", which
  only moves the due date (the new date is the one that counts) — plus each due date still open
  that has passed (before today): a missed visit. An open due date of today or later is not
  counted yet: it can still be met.
- on time: answered by a visit on or before the due date.
- per worker: whose list the visit was for (a partner covering a leave visits for the worker);
  open dates by the person's responsible worker. Per grid: the household's grid.

Read from the visit rows through ix_care_visit_person_at / ix_care_person_due: a register is a
few thousand people per street, not a rollup's worth.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from sqlalchemy import Select, func, select
from sqlalchemy import case as when
from sqlalchemy.ext.asyncio import AsyncSession

from .care_models import CareHousehold, CarePerson, CareVisit
from .rollup import local_day

BY = ("grid", "worker", "grid_worker")


async def visit_coverage(session: AsyncSession, grids: Select | list[int], first: date, last: date, today: date,
                         by: str = "grid") -> dict[int, tuple[int, int]]:
    """{key: (due, done on time)} for the households in `grids`, only non-empty keys; the key is
    the grid id, the worker id, or (grid id, worker id) for by="grid_worker"."""
    if by not in BY:
        raise ValueError(by)
    out: dict = {}
    keys = {"grid": [CareHousehold.node_id], "worker": [CareVisit.for_person_id],
            "grid_worker": [CareHousehold.node_id, CareVisit.for_person_id]}[by]

    def key(row) -> int | tuple[int, int]:
        return int(row[0]) if len(keys) == 1 else (int(row[0]), int(row[1]))

    answered = (select(*keys, func.count(), func.sum(when((CareVisit.day <= CareVisit.due, 1), else_=0)))
                .select_from(CareVisit).join(CareHousehold, CareHousehold.id == CareVisit.household_id)
                .where(CareHousehold.node_id.in_(grids), CareVisit.due >= first, CareVisit.due <= last,
                       CareVisit.situation != "absent")
                .group_by(*keys))
    for row in await session.execute(answered):
        n, ontime = row[-2], row[-1]
        got = out.setdefault(key(row), [0, 0])
        got[0] += int(n)
        got[1] += int(ontime or 0)
    open_until = min(last, today - timedelta(days=1))
    if first <= open_until:
        keys = [CarePerson.worker_id if k is CareVisit.for_person_id else k for k in keys]
        missed = (select(*keys, func.count())
                  .select_from(CarePerson).join(CareHousehold, CareHousehold.id == CarePerson.household_id)
                  .where(CareHousehold.node_id.in_(grids), CarePerson.active.is_(True),
                         CarePerson.next_due >= first, CarePerson.next_due <= open_until)
                  .group_by(*keys))
        for row in await session.execute(missed):
            out.setdefault(key(row), [0, 0])[0] += int(row[-1])
    return {k: (due, ontime) for k, (due, ontime) in out.items()}


def days_of(start: datetime, end: datetime) -> tuple[date, date]:
    """The local days a window [start, end) touches: its first and its last."""
    return local_day(start), local_day(end - timedelta(microseconds=1))


async def add_visits(session: AsyncSession, per: dict, grids: Select | list[int], start: datetime, end: datetime,
                     now: datetime, by: str = "grid") -> dict:
    """Fill visits_due / visits_on_time of the Stats in `per` (keyed like visit_coverage; Stats
    are added for keys with visits only) and return `per`."""
    from .routines.stats import Stats

    first, last = days_of(start, end)
    for k, (due, ontime) in (await visit_coverage(session, grids, first, last, local_day(now), by)).items():
        st = per.setdefault(k, Stats())
        st.visits_due, st.visits_on_time = due, ontime
    return per


async def workers_by_grid(session: AsyncSession, grids: Select | list[int], start: datetime, end: datetime,
                          now: datetime) -> dict[int, list[tuple[str, int, int]]]:
    """Each grid's workers' coverage, for the group reports: {grid: [(worker name, due, on time)]}
    by name. Workers are named, never the people they visit."""
    from .models import Person

    first, last = days_of(start, end)
    cov = await visit_coverage(session, grids, first, last, local_day(now), "grid_worker")
    if not cov:
        return {}
    ids = sorted({w for _, w in cov})
    names: dict[int, str] = {}
    for i in range(0, len(ids), 5000):  # a city's workers: within SQLite's bound-parameter limit
        names.update((await session.execute(select(Person.id, Person.name).where(
            Person.id.in_(ids[i:i + 5000])))).all())
    out: dict[int, list[tuple[str, int, int]]] = {}
    for (g, w), (due, ontime) in cov.items():
        out.setdefault(g, []).append((names.get(w, ""), due, ontime))
    return {g: sorted(rows) for g, rows in out.items()}
