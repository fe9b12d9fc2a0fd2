"""The deadline sweep: reminders, yellow and red cards, supervision, catch-up, idempotence, leave."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from workflows import cases
from workflows.models import Case, CaseDeadline, CaseEvent
from workflows.routines import leave as leaves

from .test_routines_world import World


@pytest.fixture
async def w(sessionmaker, clock) -> World:
    return await World(sessionmaker, clock).setup()


async def dispatched(w: World, to: str = "CY01-W1", **kw):
    case = await w.do(cases.report, reporter_id=None, category_id=w.cats["市政设施"], description="路灯不亮",
                      grid_id=w.nodes["CY-01"])
    if "team" in kw:
        return await w.do(cases.dispatch, w.ids["CY01-L"], case.id, team_id=w.teams[kw["team"]])
    return await w.do(cases.dispatch, w.ids["CY01-L"], case.id, assignee_id=w.ids[to])


async def test_reminders_cards_and_supervision(w: World):
    case = await dispatched(w)
    t0 = case.registered_at
    assert case.deadline_at - t0 == timedelta(hours=72)
    assert (await w.sweep("deadlines", t0 + timedelta(hours=35))).acted == 0
    r = await w.sweep("deadlines", t0 + timedelta(hours=36))
    assert r.counts["remind_50"] == 1
    assert "办理时限已过半" in (await w.texts("p:CY01-W1"))[-1]
    assert (await w.sweep("deadlines", t0 + timedelta(hours=36))).acted == 0  # twice: nothing
    r = await w.sweep("deadlines", t0 + timedelta(hours=58))
    assert r.counts["remind_80"] == 1 and "即将到期" in (await w.texts("p:CY01-W1"))[-1]
    group_before = len(await w.texts("g:CY-01"))
    r = await w.sweep("deadlines", t0 + timedelta(hours=72))
    assert r.counts["yellow_card"] == 1
    assert "黄牌警告" in (await w.texts("p:CY01-W1"))[-1]
    assert "黄牌警告" in (await w.texts("g:CY-01"))[-1] and len(await w.texts("g:CY-01")) == group_before + 1
    r = await w.sweep("deadlines", t0 + timedelta(hours=144))
    assert r.counts["red_card"] == 1
    assert "红牌督办" in (await w.texts("g:CY-01"))[-1]
    assert "【督办】" in (await w.texts("g:CY"))[-1]  # the level above the grid
    async with w.sm() as s:
        checks = await s.get(CaseDeadline, case.id)
        assert checks.stage == 4 and checks.next_check_at is None
        actions = list((await s.execute(select(CaseEvent.action).where(CaseEvent.case_id == case.id)
                                        .order_by(CaseEvent.id))).scalars())
    assert actions[-4:] == ["remind_50", "remind_80", "yellow_card", "red_card"]
    assert (await w.sweep("deadlines", t0 + timedelta(hours=500))).acted == 0


async def test_catch_up_after_downtime_acts_once(w: World):
    case = await dispatched(w)
    # down for four days: one yellow card, no stale reminders
    r = await w.sweep("deadlines", case.registered_at + timedelta(hours=100))
    assert r.counts == {"due": 1, "yellow_card": 1, "messages": 2}  # the assignee and the grid group
    assert [e.action for e in await w.events("remind_50")] == []
    assert (await w.sweep("deadlines", case.registered_at + timedelta(hours=101))).acted == 0


async def test_team_case_goes_to_team_lead_and_closed_cases_are_left(w: World):
    case = await dispatched(w, team="T1")
    other = await dispatched(w)
    await w.do(cases.accept, w.ids["CY01-W1"], other.id)
    await w.do(cases.finish, w.ids["CY01-W1"], other.id, "修好了")
    await w.do(cases.verify, w.ids["CY01-L"], other.id, passed=True)
    r = await w.sweep("deadlines", case.registered_at + timedelta(hours=73))
    assert r.counts["yellow_card"] == 1  # only the open one
    assert any("黄牌" in t for t in await w.texts("p:T1-L"))


async def test_leave_cover_takes_reminders(w: World):
    case = await dispatched(w)
    lv = await w.do(leaves.request, w.ids["CY01-W1"], "2026-11-24", "2026-11-30", "探亲")
    await w.do(leaves.approve, w.ids["CY01-L"], lv.id)
    await w.sweep("deadlines", case.registered_at + timedelta(hours=37))
    assert any("办理时限已过半" in t for t in await w.texts("p:CY02-W1"))
    assert not any("办理时限已过半" in t for t in await w.texts("p:CY01-W1"))


async def test_unregistered_case_without_assignee_reminds_the_holder_group(w: World):
    case = await w.do(cases.report, reporter_id=None, category_id=w.cats["市政设施"], description="井盖缺失",
                      grid_id=w.nodes["CY-01"])
    await w.do(cases.register, w.ids["CY01-L"], case.id)
    c = await w.case(case.id)
    r = await w.sweep("deadlines", c.registered_at + timedelta(hours=37))
    assert r.counts["remind_50"] == 1 and "办理时限已过半" in (await w.texts("g:CY-01"))[-1]


async def test_many_cases_one_sweep(w: World):
    ids = [(await dispatched(w, to="CY01-W2")).id for _ in range(30)]
    async with w.sm() as s:
        t0 = (await s.get(Case, ids[0])).registered_at
    r = await w.sweep("deadlines", t0 + timedelta(hours=60))
    assert r.counts["due"] == 30 and r.counts["remind_80"] == 30
    assert len([t for t in await w.texts("p:CY01-W2") if "即将到期" in t]) == 30


async def test_lanes_share_the_grids_and_act_once(w: World):
    """On PostgreSQL the sweep runs in lanes (transactions at once), each over the grids with
    id % LANES == i, so a grid's cases are all in one lane; SQLite runs one. Every case once."""
    from workflows.routines.deadlines import LANES
    from workflows.routines.models import SweepRun

    ids = [(await dispatched(w, to="CY01-W2")).id for _ in range(6)]
    for _ in range(4):
        case = await w.do(cases.report, reporter_id=None, category_id=w.cats["市政设施"], description="井盖缺失",
                          grid_id=w.nodes["CY-02"])
        ids.append((await w.do(cases.dispatch, w.ids["CY02-L"], case.id, assignee_id=w.ids["CY02-W1"])).id)
    async with w.sm() as s:
        t0 = max([(await s.get(Case, i)).registered_at for i in ids])
        pg = s.bind.dialect.name == "postgresql"
    r = await w.sweep("deadlines", t0 + timedelta(hours=60))
    assert r.counts["due"] == 10 and r.counts["remind_80"] == 10
    async with w.sm() as s:
        runs = (await s.execute(select(SweepRun).where(SweepRun.name == "deadlines"))).scalars().all()
        events = (await s.execute(select(CaseEvent.case_id).where(CaseEvent.action == "remind_80"))).scalars().all()
    assert sorted(events) == sorted(ids)  # each case once
    assert LANES == 2 and w.nodes["CY-01"] % 2 != w.nodes["CY-02"] % 2  # the two grids fall in different lanes
    assert sorted(run.result["counts"].get("due", 0) for run in runs) == ([4, 6] if pg else [10])
    assert len([t for t in await w.texts("p:CY01-W2") if "即将到期" in t]) == 6
    assert len([t for t in await w.texts("p:CY02-W1") if "即将到期" in t]) == 4
    assert (await w.sweep("deadlines", t0 + timedelta(hours=61))).counts.get("due", 0) == 0


async def test_a_failing_lane_is_rolled_back_alone_and_its_cases_come_next_run(w: World):
    """A lane that fails (here a trigger refuses the case events of CY-02's cases) rolls back
    alone: on PostgreSQL the other lane's cases are reminded and committed, the failure is
    recorded in a run row of its own and the sweep raises once both lanes are done; the next run
    reminds the failed lane's cases, and every case is reminded exactly once. SQLite runs one lane,
    so there the whole run is rolled back and the next one does all ten."""
    from sqlalchemy import text

    from workflows.models import Outbox
    from workflows.routines.models import SweepRun

    first = [(await dispatched(w, to="CY01-W2")).id for _ in range(6)]
    second = []
    for _ in range(4):
        case = await w.do(cases.report, reporter_id=None, category_id=w.cats["市政设施"], description="井盖缺失",
                          grid_id=w.nodes["CY-02"])
        second.append((await w.do(cases.dispatch, w.ids["CY02-L"], case.id, assignee_id=w.ids["CY02-W1"])).id)
    ids = ", ".join(map(str, second))
    async with w.sm() as s, s.begin():
        t0 = max([(await s.get(Case, i)).registered_at for i in first + second])
        pg = s.bind.dialect.name == "postgresql"
        if pg:
            await s.execute(text(f"""CREATE FUNCTION lane_down() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN IF NEW.case_id IN ({ids}) THEN RAISE EXCEPTION 'lane down'; END IF; RETURN NEW; END $$"""))
            await s.execute(text("CREATE TRIGGER lane_down BEFORE INSERT ON case_event FOR EACH ROW "
                                 "EXECUTE FUNCTION lane_down()"))
        else:
            await s.execute(text(f"CREATE TRIGGER lane_down BEFORE INSERT ON case_event WHEN NEW.case_id IN ({ids}) "
                                 "BEGIN SELECT RAISE(ABORT, 'lane down'); END"))
    at = t0 + timedelta(hours=60)
    with pytest.raises(Exception, match="lane down"):
        await w.sweep("deadlines", at)

    async def reminded() -> list[int]:
        async with w.sm() as s:
            return sorted((await s.execute(select(CaseEvent.case_id)
                                           .where(CaseEvent.action == "remind_80"))).scalars())

    async def runs() -> list[tuple[int, bool]]:
        async with w.sm() as s:
            rows = (await s.execute(select(SweepRun).where(SweepRun.name == "deadlines")
                                    .order_by(SweepRun.id))).scalars()
            return [(r.result.get("counts", {}).get("due", 0), r.error is not None) for r in rows]

    assert await reminded() == (sorted(first) if pg else [])
    assert sorted(await runs()) == ([(0, True), (6, False)] if pg else [(0, True)])
    async def notices() -> list[str]:
        async with w.sm() as s:
            return sorted((await s.execute(select(Outbox.chat_id).where(
                Outbox.payload["text"].as_string().like("%即将到期%")))).scalars())

    # nothing of the failed lane was written, the other lane's notices were
    assert await notices() == (["p:CY01-W2"] * 6 if pg else [])

    async with w.sm() as s, s.begin():
        await s.execute(text("DROP TRIGGER lane_down ON case_event" if pg else "DROP TRIGGER lane_down"))
    r = await w.sweep("deadlines", at)
    assert r.counts["due"] == (4 if pg else 10) and r.counts["remind_80"] == (4 if pg else 10)
    assert await reminded() == sorted(first + second)  # each case once over both runs
    assert await notices() == ["p:CY01-W2"] * 6 + ["p:CY02-W1"] * 4
    assert (await w.sweep("deadlines", at + timedelta(minutes=1))).counts.get("due", 0) == 0


async def test_bulk_outbox_write_skips_used_keys(w: World):
    """A sweep's batch above common.STAGE_OVER goes by COPY through a staging table on PostgreSQL
    (one INSERT … unnest below it, chunked inserts on SQLite): either way a dedupe key already used
    — by an earlier transaction, earlier in this one, or twice in the batch — is written once, and
    a second batch in the same transaction starts from an empty stage (its rows without a key
    would otherwise be written again)."""
    from workflows.models import Outbox
    from workflows.outbox import Msg
    from workflows.routines.common import STAGE_OVER, OutboxBatch

    n = STAGE_OVER + 500
    grid = w.nodes["CY-01"]

    def batch(ctx, keys, unkeyed: int = 0):
        out = OutboxBatch(ctx)
        for k in keys:
            out.to_group(grid, lambda t, k=k: Msg(f"通知 {k}"), f"bulk:{k}")
        for k in range(unkeyed):
            out.to_group(grid, lambda t, k=k: Msg(f"无键 {k}"))
        return out

    async with w.sm() as s, s.begin():
        await batch(w.ctx(s), range(100)).flush()  # an earlier run wrote the first 100
    async with w.sm() as s, s.begin():
        ctx = w.ctx(s)
        first = await batch(ctx, [*range(n), 7, 8], unkeyed=50).flush()  # 7 and 8 twice in the batch
        second = await batch(ctx, range(n - 10, 2 * n)).flush()  # overlaps the first by 10
    assert first["pending"] == n + 52 and second["pending"] == n + 10  # what was composed
    async with w.sm() as s:
        keys = list((await s.execute(select(Outbox.dedupe_key).where(Outbox.dedupe_key.like("bulk:%")))).scalars())
        texts = {k: p["text"] for k, p in await s.execute(
            select(Outbox.dedupe_key, Outbox.payload).where(Outbox.dedupe_key.in_(["bulk:7", f"bulk:{2 * n - 1}"])))}
        unkeyed = list((await s.execute(select(Outbox.payload).where(Outbox.dedupe_key.is_(None),
                                                                      Outbox.chat_id == "g:CY-01"))).scalars())
    assert len(keys) == len(set(keys)) == 2 * n
    assert texts == {"bulk:7": "通知 7", f"bulk:{2 * n - 1}": f"通知 {2 * n - 1}"}
    assert sorted(p["text"] for p in unkeyed if p["text"].startswith("无键")) == sorted(f"无键 {k}" for k in range(50))
