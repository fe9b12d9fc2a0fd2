"""Care visits (结对关爱、定期走访): the register import, the due and overdue sweeps, /visit,
leave moving visits to the A/B partner, who may see a record, and the access log."""

from __future__ import annotations

import asyncio
from datetime import date

import pytest
from sqlalchemy import select

from bot.db import make_engine, make_sessionmaker
from workflows import care
from workflows.care_models import CareAccess, CareHousehold, CarePerson, CareVisit
from workflows.clock import FixedClock
from workflows.errors import Invalid, NotAllowed
from workflows.importer import ImportFailed, import_yaml
from workflows.models import Case, Outbox
from workflows.routines.models import Leave, RoutineMark
from workflows.routines.sweeps import run_sweep

from .test_routines_world import CH, FAR, INSIDE, World, local

REGISTER = """
care:
  - household: CY01-H01
    grid: CY-01
    building: 3幢
    door: 2单元101
    location: [30.285, 120.105]
    people:
      - {code: P1, name: 王秀英, type: 独居老人, worker: CY01-W1, contact: 王强, contact_phone: "13900000001",
         notes: 腿脚不便, first_due: 2026-11-23}
  - household: CY01-H02
    grid: CY-01
    people:
      - {code: P2, name: 李建国, type: 空巢老人, worker: CY01-W1, first_due: 2026-11-25}
      - {code: P3, name: 周桂兰, type: 低保, frequency: 每周, worker: CY01-W2, first_due: 2026-11-30}
"""


@pytest.fixture
async def w(sessionmaker, clock) -> World:
    world = await World(sessionmaker, clock).setup()
    async with sessionmaker() as s, s.begin():
        await import_yaml(s, REGISTER, "register.yaml", now=clock.now())
    async with sessionmaker() as s:
        world.care = {p.code: p.id for p in (await s.execute(select(CarePerson))).scalars()}
    return world


async def person(w: World, code: str) -> CarePerson:
    async with w.sm() as s:
        return await s.get(CarePerson, w.care[code])


# ---------------------------------------------------------------- the register

async def test_register_imported_with_defaults(w: World):
    p1, p2, p3 = [await person(w, c) for c in ("P1", "P2", "P3")]
    assert (p1.frequency_days, p2.frequency_days, p3.frequency_days) == (7, 14, 7)  # 低保 set to 每周
    assert p1.next_due == date(2026, 11, 23) and p1.contact_phone == "13900000001"
    async with w.sm() as s:
        assert (await s.execute(select(CareHousehold.code).order_by(CareHousehold.code))).scalars().all() == [
            "CY01-H01", "CY01-H02"]
    # importing the same file again changes nothing
    async with w.sm() as s, s.begin():
        report = await import_yaml(s, REGISTER, "register.yaml", now=w.clock.now())
    assert report.counts["care_people"] == {"created": 0, "updated": 0, "unchanged": 3}


@pytest.mark.parametrize("row, error", [
    ("{household: H9, grid: NOPE, people: [{code: X1, name: 甲, type: 独居老人, worker: CY01-W1}]}", "unknown node"),
    ("{household: H9, grid: CY, people: [{code: X1, name: 甲, type: 独居老人, worker: CY01-W1}]}", "is not a grid"),
    ("{household: H9, grid: CY-01, people: [{code: X1, name: 甲, type: 独居老人, worker: NOBODY}]}", "unknown person"),
    ("{household: H9, grid: CY-01, people: [{code: X1, name: 甲, type: 独居老人, worker: CY02-W1}]}",
     "is not a worker of grid"),
    ("{household: H9, grid: CY-01, people: [{code: X1, name: 甲, type: 外星人, worker: CY01-W1}]}",
     "unknown care type"),
    ("{household: H9, grid: CY-01, people: [{code: X1, name: 甲, type: 低保, frequency: 偶尔, worker: CY01-W1}]}",
     "unknown frequency"),
])
async def test_bad_register_row_changes_nothing(w: World, row: str, error: str):
    text = f"care:\n  - {row}\npoint_rules:\n  - {{code: award, name: 奖励, points: 5}}\n"
    with pytest.raises(ImportFailed) as e:
        async with w.sm() as s, s.begin():
            await import_yaml(s, text, "bad.yaml", now=w.clock.now())
    assert error in str(e.value) and "bad.yaml:2" in str(e.value)
    assert await w.count(CarePerson) == 3 and await w.count(CareHousehold) == 2


# ---------------------------------------------------------------- the morning list

async def test_due_sweep_once_per_slot(w: World):
    assert (await w.sweep("care_due", local(2026, 11, 23, 7, 59))).acted == 0  # not before the morning
    r = await w.sweep("care_due", local(2026, 11, 23, 8, 0))
    assert r.counts == {"reminded": 1}  # only CY01-W1 has a visit due today
    assert (await w.sweep("care_due", local(2026, 11, 23, 8, 5))).acted == 0
    texts = await w.texts("p:CY01-W1")
    assert len(texts) == 1
    assert "本周需要走访 2 位" in texts[0] and "王秀英" in texts[0] and "李建国" in texts[0]
    assert await w.texts("p:CY01-W2") == []  # 周桂兰 is due next Monday
    assert all(not o.is_group for o in await w.outbox())  # the register is never posted in a group
    assert await w.count(CareAccess, CareAccess.what == "reminder") == 2
    # Wednesday: 李建国 falls due, 王秀英 is listed as overdue
    await w.sweep("care_due", local(2026, 11, 25, 9, 0))
    texts = await w.texts("p:CY01-W1")
    assert len(texts) == 2 and "已逾期" in texts[1]


async def test_due_sweep_two_processes_send_once(w: World, engine):
    other = make_engine(engine.url.render_as_string(hide_password=False))
    try:
        results = await asyncio.gather(*(run_sweep(sm, "care_due", clock=FixedClock(local(2026, 11, 23, 8)),
                                                   channels=frozenset({CH}))
                                         for sm in (w.sm, make_sessionmaker(other))))
    finally:
        await other.dispose()
    assert sorted(r.counts.get("reminded", 0) for r in results) == [0, 1]
    assert len(await w.texts("p:CY01-W1")) == 1
    assert await w.count(RoutineMark, RoutineMark.kind == "care_due") == 1


# ---------------------------------------------------------------- overdue

async def test_overdue_reminds_the_worker_then_the_leader(w: World):
    assert (await w.sweep("care_overdue", local(2026, 11, 23, 10))).acted == 0  # due today is not late
    r = await w.sweep("care_overdue", local(2026, 11, 24, 8))
    assert r.counts == {"overdue_worker": 1}
    assert "已过应访日期" in (await w.texts("p:CY01-W1"))[-1]
    assert (await w.sweep("care_overdue", local(2026, 11, 25, 8))).acted == 0
    r = await w.sweep("care_overdue", local(2026, 11, 26, 8))
    assert r.counts == {"overdue_leader": 1, "overdue_worker": 1}  # 王秀英 to the leader; 李建国 (due 11-25) late
    leader = await w.texts("p:CY01-L")
    assert len(leader) == 1 and "CY01-H01" in leader[0] and "王网格员" in leader[0]
    assert "王秀英" not in leader[0] and "独居" not in leader[0]  # the household's code, not who or why
    assert (await w.sweep("care_overdue", local(2026, 11, 27, 8))).acted == 0
    assert await w.texts("p:CY02-L") == []


# ---------------------------------------------------------------- /visit

async def test_visit_needing_help_opens_a_case(w: World):
    w.clock.set(local(2026, 11, 23, 10))
    d = w.desk
    await d.send("CY01-W1", "/visit")
    assert (await d.last("p:CY01-W1")).labels()[:2] == ["CY01-H01 王秀英 11-23", "CY01-H02 李建国 11-25"]
    await d.press("CY01-W1", "CY01-H01 王秀英 11-23")
    record = await d.last_text("CY01-W1")
    assert "腿脚不便" in record and "王强 13900000001" in record
    await d.press("CY01-W1", "需要帮助")
    await d.send("CY01-W1", "厨房水管漏水，需要维修")
    await d.photo("CY01-W1", "leak.jpg")
    # far from the household: refused, nothing recorded, still asked for the location
    await d.send("CY01-W1", location=FAR)
    assert "请到户后再登记走访" in await d.last_text("CY01-W1")
    assert await w.count(CareVisit) == 0
    await d.send("CY01-W1", location=INSIDE)
    done = await d.last_text("CY01-W1")
    assert "走访已登记：需要帮助" in done and "已登记为事件" in done
    async with w.sm() as s:
        visit = (await s.execute(select(CareVisit))).scalar_one()
        case = await s.get(Case, visit.case_id)
        p1 = await s.get(CarePerson, w.care["P1"])
    assert case.source == "visit" and case.grid_id == w.nodes["CY-01"] and case.attachments[0]["ref"] == "leak.jpg"
    assert "CY01-H01" in case.description and "王秀英" not in case.description
    assert visit.distance_m == 0 and visit.photos and p1.next_due == date(2026, 11, 30)
    group = await w.texts("g:CY-01")
    assert group and all("王秀英" not in t and "独居" not in t for t in group)  # the card names the household code
    assert await w.count(CareAccess, CareAccess.what == "visit") == 1


async def test_not_at_home_comes_back_within_days(w: World):
    w.clock.set(local(2026, 11, 23, 10))
    visit = await w.do(care.record_visit, w.ids["CY01-W1"], w.care["P1"], "absent")
    assert visit.warning == "未提供位置" and visit.case_id is None
    assert (await person(w, "P1")).next_due == date(2026, 11, 25)


async def test_visit_for_someone_not_on_the_list_is_refused(w: World):
    with pytest.raises(NotAllowed):
        await w.do(care.record_visit, w.ids["CY01-W2"], w.care["P1"], "fine")
    with pytest.raises(Invalid):
        await w.do(care.record_visit, w.ids["CY01-W1"], w.care["P1"], "help")  # help needs words
    await w.desk.send("CY01-W2", "/visit")
    assert "王秀英" not in (await w.desk.last("p:CY01-W2")).labels()[0]
    assert await w.count(CareVisit) == 0


# ---------------------------------------------------------------- leave and A/B cover

async def test_leave_moves_visits_to_the_partner(w: World):
    async with w.sm() as s, s.begin():
        s.add(Leave(person_id=w.ids["CY01-W1"], cover_id=w.ids["CY02-W1"], node_id=w.nodes["CY-01"],
                    start_date=date(2026, 11, 23), end_date=date(2026, 11, 27), reason="家中有事",
                    status="approved", created_at=w.clock.now()))
    await w.sweep("care_due", local(2026, 11, 23, 8))
    assert await w.texts("p:CY01-W1") == []
    cover = await w.texts("p:CY02-W1")
    assert len(cover) == 1 and "王网格员 请假，由您代为走访" in cover[0] and "王秀英" in cover[0]
    await w.sweep("care_overdue", local(2026, 11, 24, 8))
    assert len(await w.texts("p:CY02-W1")) == 2 and await w.texts("p:CY01-W1") == []
    w.clock.set(local(2026, 11, 24, 10))
    await w.desk.send("CY02-W1", "/visit")
    await w.desk.press("CY02-W1", "CY01-H01 王秀英 11-23（代岗）")
    await w.desk.press("CY02-W1", "正常")
    await w.desk.press("CY02-W1", "跳过")
    await w.desk.press("CY02-W1", "无法定位")
    async with w.sm() as s:
        visit = (await s.execute(select(CareVisit))).scalar_one()
    assert (visit.person_id, visit.for_person_id) == (w.ids["CY02-W1"], w.ids["CY01-W1"])
    assert visit.situation == "fine" and visit.warning == "未提供位置"


# ---------------------------------------------------------------- who sees it, and the access log

async def test_only_the_grid_and_above_see_a_record(w: World):
    for code in ("CY01-L", "CY-C", "XH-C", "CY01-W2"):  # the grid's leader and worker, community, street
        await w.desk.send(code, "/care P1")
        assert "【关爱对象】王秀英" in await w.desk.last_text(code), code
    for code in ("CY02-L", "T1-M"):  # another grid's leader, a team member
        await w.desk.send(code, "/care P1")
        text = await w.desk.last_text(code)
        assert "王秀英" not in text and ("只有 翠苑一网格 的网格工作人员" in text or "没有这个命令" in text
                                         or "工作人员" in text), text
    async with w.sm() as s:
        rows = (await s.execute(select(CareAccess).where(CareAccess.care_person_id == w.care["P1"],
                                                         CareAccess.what == "detail"))).scalars().all()
    assert sorted(r.viewer_id for r in rows) == sorted(w.ids[c] for c in ("CY01-L", "CY-C", "XH-C", "CY01-W2"))
    assert all(r.channel == CH for r in rows)


async def test_audit_access_command(w: World, db_url, monkeypatch, capsys):
    await w.desk.send("CY01-L", "/care P1")
    await w.sweep("care_due", local(2026, 11, 23, 8))
    monkeypatch.setenv("DATABASE_URL", db_url)
    from bot.cli import main

    code = await asyncio.to_thread(main, ["audit", "access", "--person", "P1"])
    out = capsys.readouterr().out
    assert code == 0
    lines = out.strip().splitlines()
    assert lines[0] == "P1: 3 access(es)"  # the import, the leader's look, the morning reminder
    assert "张网格长\tdetail\ttest" in out and "王网格员\treminder" in out and "(console)\timport" in out
    code = await asyncio.to_thread(main, ["audit", "access", "--person", "NOPE"])
    assert code == 1 and "找不到编码为 NOPE 的关爱对象" in capsys.readouterr().out


async def test_outbox_never_carries_the_register_to_groups(w: World):
    await w.sweep("care_due", local(2026, 11, 23, 8))
    await w.sweep("care_overdue", local(2026, 11, 27, 8))
    async with w.sm() as s:
        groups = (await s.execute(select(Outbox.payload).where(Outbox.is_group.is_(True)))).scalars().all()
    assert all("王秀英" not in p.get("text", "") for p in groups)


async def test_export_carries_the_register_and_is_logged(w: World):
    from workflows.importer import export_data

    async with w.sm() as s, s.begin():
        text = await export_data(s)
    assert "care:" in text and "household: CY01-H01" in text and "frequency: 7" in text and "point_rules" not in text
    assert await w.count(CareAccess, CareAccess.what == "export") == 3
    async with w.sm() as s, s.begin():
        report = await import_yaml(s, text, "export.yaml", now=w.clock.now())
    assert report.counts["care_people"] == {"created": 0, "updated": 0, "unchanged": 3}


async def test_sweeps_read_the_grids_own_time_zone(w: World):
    """A grid two hours behind the office (Asia/Urumqi): its morning comes two hours later."""
    from workflows.models import Node

    async with w.sm() as s, s.begin():
        (await s.get(Node, w.nodes["CY-01"])).timezone = "Asia/Urumqi"
    assert (await w.sweep("care_due", local(2026, 11, 23, 8, 30))).acted == 0  # 06:30 in the grid
    assert (await w.sweep("care_due", local(2026, 11, 23, 10, 0))).counts == {"reminded": 1}  # 08:00 there
    assert (await w.sweep("care_overdue", local(2026, 11, 24, 9, 0))).acted == 0  # 07:00 the day after
    assert (await w.sweep("care_overdue", local(2026, 11, 24, 10, 0))).counts == {"overdue_worker": 1}
