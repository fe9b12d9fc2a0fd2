"""One person, two platforms: /bindaccount links a second chat account, /prefer picks where messages go.

/bindaccount in a private chat shows a one-time 8-character code (10 minutes; workflows/codes.py
for its entropy, the lock-out after wrong tries and the audit trail). Sending
`/bindaccount CODE` from a private chat on the other platform joins the two accounts into one
person, so cases, tasks and history are one. When one side is a staff member, that person is
kept; two different staff members are never joined. The other person keeps their row (nothing
is deleted) but loses their accounts; their cases name the kept person as reporter.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update

from workflows import codes
from workflows.errors import Invalid
from workflows.models import Account, Assignment, Case, CaseEvent, Person

from .codes import attempt, tell_other_accounts, who
from .registry import command
from .turn import Turn

PURPOSE = "acct"
LIFETIME = timedelta(minutes=10)


async def _is_staff(turn: Turn, person: Person) -> bool:
    if person.code:
        return True
    row = await turn.session.execute(select(Assignment.id).where(Assignment.person_id == person.id).limit(1))
    return row.first() is not None


async def _new_code(turn: Turn, person: Person) -> str:
    return await codes.issue(turn.ctx, PURPOSE, LIFETIME, person_id=person.id, who=who(turn))


async def _use_code(sender: codes.Who, turn: Turn, code: str) -> Person:
    row = await codes.redeem(turn.ctx, PURPOSE, code, sender)
    return await turn.session.get(Person, row.person_id)


async def join_people(turn: Turn, keep: Person, gone: Person) -> None:
    """Moves gone's accounts and reports to keep. gone must not be staff."""
    s = turn.session
    await s.execute(update(Account).where(Account.person_id == gone.id).values(person_id=keep.id))
    await s.execute(update(Case).where(Case.reporter_id == gone.id).values(reporter_id=keep.id))
    await s.execute(update(CaseEvent).where(CaseEvent.actor_id == gone.id).values(actor_id=keep.id))
    keep.phone = keep.phone or gone.phone
    keep.language = keep.language or gone.language
    keep.preferred_channel = keep.preferred_channel or gone.preferred_channel
    await s.flush()


@command("bindaccount", "关联另一个平台的账号（同一人）", private=True)
async def bind_account(turn: Turn) -> None:
    if turn.person is None:
        raise Invalid("请在私聊中使用这个命令。")
    code = turn.text.strip()
    if not code:
        code = await _new_code(turn, turn.person)
        await turn.say(turn.t("您的账号绑定码：{code}（10 分钟内有效，只能用一次）。\n请在另一个平台与我的私聊中发送：/bindaccount {code}",
                              code=code))
        return
    other = await attempt(turn, PURPOSE, lambda sender: _use_code(sender, turn, code))
    if other is None:
        return
    me = turn.person
    if other.id == me.id:
        await turn.say(turn.t("这两个账号已经是同一个人了。"))
        return
    me_staff, other_staff = await _is_staff(turn, me), await _is_staff(turn, other)
    if me_staff and other_staff:
        raise Invalid("两个不同的工作人员账号不能合并。工作人员请用管理员生成的 /link 关联码。")
    keep, gone = (me, other) if me_staff else (other, me)
    await join_people(turn, keep, gone)
    turn.person = keep
    await tell_other_accounts(turn, keep, turn.inbound.user_name)
    await turn.say(turn.t("账号已关联：{name}。两个平台上的事件和记录现在是同一个人的。"
                          "发送 /prefer 可让通知发到当前平台。", name=keep.name))


@command("prefer", "通知优先发到当前平台", private=True)
async def prefer(turn: Turn) -> None:
    if turn.person is None:
        raise Invalid("请在私聊中使用这个命令。")
    turn.person.preferred_channel = turn.inbound.channel
    await turn.say(turn.t("好的，今后的通知会优先发到这里（{channel}）。", channel=turn.inbound.channel))
