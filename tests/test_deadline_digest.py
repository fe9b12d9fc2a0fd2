"""The deadline sweep's burst rule: more than N cases of one group turned yellow/red in one run
give the group ONE digest (counts, case numbers, most overdue first) and the assignee one digest,
instead of a card notice per case; at N or below, the per-case notices go as before."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from workflows.i18n import T
from workflows.models import Case, CaseEvent
from workflows.routines import deadline_digest

from .test_routines_deadlines import dispatched
from .test_routines_world import World


@pytest.fixture
async def w(sessionmaker, clock) -> World:
    return await World(sessionmaker, clock).setup()


async def numbers(w: World, ids: list[int]) -> list[str]:
    async with w.sm() as s:
        return [(await s.get(Case, i)).number for i in ids]


async def card_events(w: World, action: str) -> int:
    async with w.sm() as s:
        return (await s.execute(select(func.count()).select_from(CaseEvent).where(CaseEvent.action == action))
                ).scalar_one()


async def test_a_burst_gives_the_group_and_the_assignee_one_digest_most_overdue_first(w: World):
    t0 = w.clock.now()
    early = [(await dispatched(w, to="CY01-W2")).id for _ in range(3)]
    w.clock.advance(hours=72)
    late = [(await dispatched(w, to="CY01-W2")).id for _ in range(5)]
    group_before = len(await w.texts("g:CY-01"))
    person_before = len(await w.texts("p:CY01-W2"))

    # 150 h after the first three: they are red (twice the 72 h limit), the other five yellow
    r = await w.sweep("deadlines", t0 + timedelta(hours=150))
    assert r.counts["red_card"] == 3 and r.counts["yellow_card"] == 5
    group = (await w.texts("g:CY-01"))[group_before:]
    person = (await w.texts("p:CY01-W2"))[person_before:]
    assert len(group) == 1 and len(person) == 1  # one digest each, not 8 card notices
    assert group == person
    digest = group[0]
    red, yellow = await numbers(w, early), await numbers(w, late)
    assert "本次检查共 8 件事件需要处理" in digest
    assert f"红牌督办（超时限一倍） 3 件：{' '.join(red)}" in digest
    assert f"黄牌警告（已超时限） 5 件：{' '.join(yellow)}" in digest
    assert digest.index(red[0]) < digest.index(yellow[0])  # overdue first
    assert f"/case {red[0]}" in digest
    # the level above gets its three supervision notices one by one (3 is not a burst)
    assert len([t for t in await w.texts("g:CY") if t.startswith("【督办】")]) == 3
    assert r.counts["digests"] == 2 and r.counts["digested"] == 16
    # the cards are on the cases all the same: events (the /case view shows them)
    assert await card_events(w, "red_card") == 3 and await card_events(w, "yellow_card") == 5

    # a second run has nothing new to say
    assert (await w.sweep("deadlines", t0 + timedelta(hours=150))).acted == 0
    assert len(await w.texts("g:CY-01")) == group_before + 1


async def test_at_the_threshold_each_case_gets_its_card_notice_as_before(w: World):
    ids = [(await dispatched(w, to="CY01-W2")).id for _ in range(5)]
    t0 = w.clock.now()
    group_before = len(await w.texts("g:CY-01"))
    r = await w.sweep("deadlines", t0 + timedelta(hours=73))
    assert r.counts["yellow_card"] == 5 and "digests" not in r.counts
    group = (await w.texts("g:CY-01"))[group_before:]
    assert len(group) == 5 and all(t.startswith("【黄牌警告】") for t in group)
    assert [n for n in await numbers(w, ids) if not any(n in t for t in group)] == []
    assert len([t for t in await w.texts("p:CY01-W2") if t.startswith("【黄牌警告】")]) == 5


async def test_the_threshold_is_a_setting_and_reminders_never_digest(w: World, monkeypatch):
    monkeypatch.setattr(deadline_digest, "DIGEST_OVER", 1)
    t0 = w.clock.now()
    for _ in range(3):
        await dispatched(w, to="CY01-W2")
    r = await w.sweep("deadlines", t0 + timedelta(hours=60))  # 80 %: reminders, one per case
    assert r.counts["remind_80"] == 3 and "digests" not in r.counts
    assert len([t for t in await w.texts("p:CY01-W2") if "即将到期" in t]) == 3
    group_before = len(await w.texts("g:CY-01"))
    r = await w.sweep("deadlines", t0 + timedelta(hours=73))
    assert r.counts["yellow_card"] == 3 and r.counts["digests"] == 2
    (digest,) = (await w.texts("g:CY-01"))[group_before:]
    assert "黄牌警告（已超时限） 3 件" in digest
    with pytest.raises(ValueError):
        deadline_digest.configure(-1)


async def test_a_burst_larger_than_a_batch_is_taken_grid_by_grid_one_digest_each(w: World):
    from workflows import cases
    from workflows.routines import deadlines

    t0 = w.clock.now()
    for _ in range(6):  # interleaved: a batch by due time alone would split both grids
        await dispatched(w, to="CY01-W2")
        case = await w.do(cases.report, reporter_id=None, category_id=w.cats["市政设施"], description="垃圾满溢",
                          grid_id=w.nodes["CY-02"])
        await w.do(cases.dispatch, w.ids["CY02-L"], case.id, assignee_id=w.ids["CY02-W1"])
    before = {g: len(await w.texts(g)) for g in ("g:CY-01", "g:CY-02")}
    w.clock.set(t0 + timedelta(hours=73))
    for _ in range(2):  # two batches of 6, as the runner repeats a full batch
        async with w.sm() as s, s.begin():
            r = await deadlines.sweep(w.ctx(s), limit=6)
        assert r.counts["yellow_card"] == 6 and r.counts["digests"] == 2  # one grid's group and worker
    for g in ("g:CY-01", "g:CY-02"):
        (digest,) = (await w.texts(g))[before[g]:]
        assert "黄牌警告（已超时限） 6 件" in digest


def test_a_digest_lists_at_most_max_listed_numbers_and_counts_all(monkeypatch):
    from datetime import UTC, datetime

    monkeypatch.setattr(deadline_digest, "MAX_LISTED", 3)
    at = datetime(2026, 11, 23, tzinfo=UTC)
    notices = [deadline_digest.Notice("yellow_card", i, f"XH-{i:03d}", at + timedelta(minutes=i), None, "")
               for i in range(1, 9)]
    zh = deadline_digest.digest(notices)(T("zh_CN")).text
    assert "黄牌警告（已超时限） 8 件：XH-001 XH-002 XH-003\n" in zh and "另有 5 件未列出编号" in zh
    en = deadline_digest.digest(notices)(T("en")).text
    assert en.isascii() and "8" in en and "XH-003" in en and "XH-004" not in en
