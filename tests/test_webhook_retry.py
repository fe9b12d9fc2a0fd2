"""Open311 webhooks when the receiver is down for hours: every change still arrives, in order,
once each; after the retry period (GRIDBOT_WEBHOOK_RETRY_HOURS) the change is failed, shown by
`gridbot api-key list` and `gridbot outbox`, and the key's next change goes. The clock is moved
(MovingClock.advance), nothing sleeps through the backoff."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import pytest
from sqlalchemy import select

from bot.api_cli import webhook_state
from bot.delivery import MAX_ATTEMPTS, Delivery, attempts_for, backoff
from bot.outbox_cli import summary
from bot.webhook import WebhookSender
from workflows import api_keys
from workflows.models import Outbox

from .support import MovingClock
from .test_open311 import LEADER, WORKER, Api, hotline

pytestmark = pytest.mark.demo


@pytest.fixture
async def api(sessionmaker):
    async with Api(sessionmaker, MovingClock()) as a:
        yield a


async def _two_changes(api: Api) -> list[Outbox]:
    """A hotline case registered and dispatched in chat: two webhook rows for the key."""
    hot = await api.key("热线", webhook_url=api.hook_url)
    status, _ = await api.post(hot.secret, **hotline(grid_code="CY-01", lat=None, long=None))
    assert status == 201
    await api.desk.press(LEADER, "立案", group="CY-01")
    await api.desk.press(LEADER, "派遣", group="CY-01")
    await api.desk.press(LEADER, (await api.desk.person(WORKER)).name, group="CY-01")
    return await _rows(api)


async def _rows(api: Api) -> list[Outbox]:
    async with api.sm() as s:
        return list((await s.execute(select(Outbox).where(Outbox.channel == "webhook").order_by(Outbox.id))).scalars())


async def _round(delivery: Delivery) -> None:
    """One delivery round and its sends (drain() would wait in real time while a key's later rows
    are due but held behind the one retrying)."""
    await delivery.deliver_due()
    await delivery.settle()


def _deliveries(api: Api) -> list[tuple[int, str, int]]:
    return [(int(h["X-Gridbot-Delivery"]), json.loads(b)["event"], i) for i, (h, b) in enumerate(api.receiver.got)]


def test_the_attempts_span_the_retry_period():
    assert backoff(3, 600) == 8 and backoff(20, 600) == 600 and backoff(10_000, 600) == 600
    n = attempts_for(timedelta(hours=24), 600)
    waits = [backoff(i, 600) for i in range(n - 1)]
    assert sum(waits) >= 24 * 3600 > sum(waits[:-1])  # the last try comes after a day, not much later
    assert attempts_for(timedelta(0), 600) == 1


async def test_a_receiver_down_for_hours_gets_every_change_in_order_once(api: Api):
    first, second = await _two_changes(api)
    api.receiver.fail = 10**9  # down
    await _round(api.delivery)
    for _ in range(3 * 6):  # three hours, looked at every 10 minutes (the backoff cap)
        api.clock.advance(600)
        await _round(api.delivery)
    tried = _deliveries(api)
    assert len(tried) > MAX_ATTEMPTS  # a chat channel would have given up long ago
    assert {d for d, _, _ in tried} == {first.id}  # the later change never overtook the one retrying
    head, later = await _rows(api)
    assert head.status == "pending" and later.status == "pending" and later.attempts == 0
    assert head.not_before - api.clock.now() <= timedelta(seconds=600)  # the backoff is capped
    async with api.sm() as s:
        queue = (await api_keys.webhook_queues(api.desk.office.ctx(s)))[int(head.chat_id.removeprefix("key:"))]
    assert (queue.waiting, queue.retrying, queue.failed) == (2, 1, 0)
    assert "2 waiting (1 retrying, oldest 3h" in webhook_state(queue, api.clock.now())

    api.receiver.fail = 0  # back up
    api.clock.advance(600)
    await _round(api.delivery)
    api.clock.advance(3600)
    # the receiver's send window runs in real time (bot/ratelimit.py), not on the moved clock:
    # the next change may wait a fraction of a second behind the one just sent
    for _ in range(30):
        await _round(api.delivery)
        if len(_deliveries(api)) > len(tried) + 1:
            break
        await asyncio.sleep(0.1)
    ok = _deliveries(api)[len(tried):]
    assert [(d, e) for d, e, _ in ok] == [(first.id, "registered"), (second.id, "dispatched")]
    assert [r.status for r in await _rows(api)] == ["sent", "sent"]


async def test_after_the_retry_period_the_change_fails_and_the_next_goes(api: Api):
    sender = WebhookSender(api.sm, retry_hours=1, backoff_cap=600)
    delivery = Delivery(api.sm, {"webhook": sender}, clock=api.clock)
    try:
        first, second = await _two_changes(api)
        api.receiver.fail = 10**9
        await _round(delivery)
        began = api.clock.now()
        for _ in range(30):
            if (await _rows(api))[0].status == "failed":
                break
            api.clock.advance(600)
            await _round(delivery)
        head, later = await _rows(api)
        assert head.status == "failed" and "gave up after retrying for 1 h" in head.error
        assert api.clock.now() - began >= timedelta(hours=1)
        assert head.attempts == attempts_for(timedelta(hours=1), 600)
        assert {d for d, _, _ in _deliveries(api)} == {first.id} and later.attempts == 0
        # the next change is now the key's head: it goes (and retries) in its turn
        await _round(delivery)
        later = (await _rows(api))[1]
        assert later.attempts == 1 and _deliveries(api)[-1][0] == second.id
        async with api.sm() as s:
            queue = (await api_keys.webhook_queues(api.desk.office.ctx(s)))[int(head.chat_id.removeprefix("key:"))]
            shown = await summary(s, api.clock.now(), timedelta(minutes=30))
        assert (queue.failed, queue.waiting) == (1, 1)
        assert "1 failed, last: gave up after retrying for 1 h" in webhook_state(queue, api.clock.now())
        # written over an hour ago, failed just now: `gridbot outbox` still lists it
        assert any("gave up after retrying" in k for k in shown["failures"]["webhook"])
    finally:
        await sender.close()
