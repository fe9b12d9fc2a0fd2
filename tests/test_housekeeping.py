"""The housekeeping sweep prunes old button meanings, seen event ids and abandoned dialogues only."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from workflows.models import ButtonRef, Conversation, InboundSeen
from workflows.routines.sweeps import run_sweep

from .support import Desk

pytestmark = pytest.mark.demo


async def test_old_things_go_recent_ones_stay(sessionmaker, clock):
    desk = Desk(sessionmaker, clock)
    await desk.setup_chats()
    await desk.send("r1", "/report")  # a dialogue, buttons, one seen event id
    await desk.press("r1", "市政设施")
    stale_token = (await desk.messages("p:r1"))[0].token("市政设施")
    clock.advance(days=40)
    await desk.send("r2", "/report")  # newer: must survive
    before = (await desk.count(ButtonRef), await desk.count(InboundSeen), await desk.count(Conversation))

    result = await run_sweep(sessionmaker, "housekeeping", clock=clock)
    assert result.counts.get("event_ids") == 2 and result.counts.get("dialogues") == 1
    assert "buttons" not in result.counts  # 40 days: buttons still kept
    assert await desk.count(Conversation) == 1 and await desk.count(InboundSeen) == before[1] - 2

    clock.advance(days=25)
    result = await run_sweep(sessionmaker, "housekeeping", clock=clock)
    assert result.counts.get("buttons", 0) > 0 and await desk.count(ButtonRef) < before[0]
    async with sessionmaker() as s:
        assert await s.get(ButtonRef, stale_token) is None
    # the pruned button answers like any expired one
    reply = await desk.send("r1", kind="button", button=stale_token)
    assert "失效" in reply.alert


async def test_unreadable_inbox_updates_go_after_their_retention_pending_ones_never(sessionmaker, clock):
    from workflows.inbox_models import InboxUpdate
    from workflows.routines.housekeeping import UNREADABLE_KEPT

    desk = Desk(sessionmaker, clock)
    async with sessionmaker() as s, s.begin():
        s.add_all([InboxUpdate(channel="telegram", update_id=1, payload={"x": 1}, status="unreadable",
                               error="bad", received_at=clock.now()),
                   InboxUpdate(channel="telegram", update_id=2, payload={"x": 2}, status="pending",
                               received_at=clock.now())])
    clock.advance(days=UNREADABLE_KEPT.days - 1)
    async with sessionmaker() as s, s.begin():
        s.add(InboxUpdate(channel="telegram", update_id=3, payload={"x": 3}, status="unreadable", error="bad",
                          received_at=clock.now()))
    result = await run_sweep(sessionmaker, "housekeeping", clock=clock)
    assert "unreadable_updates" not in result.counts and await desk.count(InboxUpdate) == 3
    clock.advance(days=2)
    result = await run_sweep(sessionmaker, "housekeeping", clock=clock)
    assert result.counts.get("unreadable_updates") == 1
    async with sessionmaker() as s:
        assert {(u.update_id, u.status) for u in (await s.execute(select(InboxUpdate))).scalars()} == {
            (2, "pending"), (3, "unreadable")}
