"""One-time codes (/bindaccount, /link, /bind): shape, single use, lock-out after wrong tries per
chat account and per chat, the audit trail, and the notice on the person's other channel."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from handlers.events import Inbound
from workflows import accounts, codes
from workflows.code_models import CodeEvent
from workflows.models import Account, GroupBinding

from .support import Desk

pytestmark = pytest.mark.demo

OTHER = "other"  # a second platform, as a person's WeChat Work next to their Telegram
LOCKED = "错误次数太多"
WRONG = "码无效"


@pytest.fixture
async def desk(sessionmaker, clock) -> Desk:
    d = Desk(sessionmaker, clock, channels=frozenset({"test", OTHER}))
    await d.setup_chats()
    return d


async def on_other(desk: Desk, user: str, text: str, *, group: str | None = None) -> str:
    """A message on the second platform; returns the answer written to that chat."""
    chat = f"og:{group}" if group else f"o:{user}"
    await desk.office.handle(Inbound(channel=OTHER, chat_id=chat, user_id=user, user_name=user,
                                     is_group=group is not None, text=text, event_id=f"o{next(desk._ids)}",
                                     chat_title=group))
    return (await desk.last(chat)).text


async def events(desk: Desk, purpose: str) -> list[str]:
    async with desk.sm() as s:
        return list((await s.execute(select(CodeEvent.event).where(CodeEvent.purpose == purpose)
                                     .order_by(CodeEvent.id))).scalars())


async def acct_code(desk: Desk, user: str = "r1") -> str:
    await desk.send(user, "/start")
    await desk.send(user, "/bindaccount")
    m = re.search(r"/bindaccount ([2-9A-Z]{8})", await desk.last_text(user))
    assert m
    return m.group(1)


async def staff_code(desk: Desk, person_code: str = "CY01-W1") -> str:
    async with desk.sm() as s, s.begin():
        return await accounts.link_token(desk.ctx(s), person_code)


async def group_code(desk: Desk, node_code: str = "CY-02") -> str:
    async with desk.sm() as s, s.begin():
        return await accounts.bind_token(desk.ctx(s), node_code)


def test_codes_have_enough_entropy_and_no_look_alikes():
    seen = {codes.new_code("acct") for _ in range(2000)}
    assert len(seen) == 2000
    assert all(len(c) == 8 and set(c) <= set(codes.ALPHABET) for c in seen)
    assert not set("01OIL") & set(codes.ALPHABET) and len(codes.ALPHABET) == 31
    assert len(codes.new_code("bind")) == 10
    assert codes.normalise(" abcd-efgh ") == "ABCDEFGH"


async def test_bindaccount_locks_out_after_five_wrong_tries(desk: Desk, clock):
    code = await acct_code(desk)
    for _ in range(codes.MAX_FAILURES):
        assert WRONG in await on_other(desk, "guesser", "/bindaccount 23456789")
    # even the right code is refused now, and it stays unused
    assert LOCKED in await on_other(desk, "guesser", f"/bindaccount {code}")
    clock.advance(minutes=16)  # the lock-out is over, and that code's 10 minutes too
    assert "过期" in await on_other(desk, "guesser", f"/bindaccount {code}")
    code = await acct_code(desk)
    assert "账号已关联" in await on_other(desk, "guesser", f"/bindaccount {code.lower()}")
    assert await events(desk, "acct") == ["issued"] + ["failed"] * 5 + ["locked", "failed", "issued", "used"]
    # single use
    assert "用过" in await on_other(desk, "someone", f"/bindaccount {code}")


async def test_bindaccount_link_is_told_on_the_other_platform(desk: Desk):
    code = await acct_code(desk, "r7")
    assert "账号已关联" in await on_other(desk, "r7-there", f"/bindaccount {code}")
    notice = await desk.last_text("r7")
    assert "关联" in notice and "不是您本人" in notice and "r7-there" in notice


async def test_link_locks_out_after_five_wrong_tries_and_tells_the_staff_member(desk: Desk, clock):
    code = await staff_code(desk)
    for _ in range(codes.MAX_FAILURES):
        assert WRONG in await on_other(desk, "intruder", "/link ABCDEFGH")
    assert LOCKED in await on_other(desk, "intruder", f"/link {code}")
    staff = await desk.person("CY01-W1")
    async with desk.sm() as s:  # nothing was linked
        intruder = (await s.execute(select(Account).where(Account.external_id == "intruder"))).scalar_one()
    assert intruder.person_id != staff.id
    # another person in another chat is not locked out; the staff member's test account hears of it
    assert "账号已关联" in await on_other(desk, "w1-there", f"/link {code}")
    assert "不是您本人" in await desk.last_text("CY01-W1")
    assert await events(desk, "link") == ["issued"] + ["failed"] * 5 + ["locked", "used"]
    clock.advance(minutes=16)
    assert "用过" in await on_other(desk, "intruder", f"/link {code}")


async def test_bind_locks_out_the_chat_whoever_tries(desk: Desk, clock):
    code = await group_code(desk)
    # five different members of one group guess once each: the group is locked, not only a member
    for n in range(codes.MAX_FAILURES):
        await on_other(desk, f"member{n}", "/bind ABCDEFGHJK", group="NEWGROUP")
    assert LOCKED in await on_other(desk, "CY02-L", f"/bind {code}", group="NEWGROUP")
    async with desk.sm() as s:
        assert (await s.execute(select(GroupBinding).where(GroupBinding.chat_id == "og:NEWGROUP"))).first() is None
    clock.advance(minutes=16)
    await desk.send("CY02-L", f"/bind {code}", group="NEWGROUP")  # on the test platform, a fresh chat
    assert "已绑定" in (await desk.last("g:NEWGROUP")).text
    assert (await events(desk, "bind"))[-1] == "used"


async def test_lock_out_counts_per_account_across_chats(desk: Desk):
    """A guesser who moves to another chat is still locked: wrong tries count per account too."""
    code = await group_code(desk)
    for n in range(codes.MAX_FAILURES):
        await on_other(desk, "roamer", "/bind ABCDEFGHJK", group=f"G{n}")
    assert LOCKED in await on_other(desk, "roamer", f"/bind {code}", group="G9")
