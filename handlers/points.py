"""Points: /points (a person's balance and last entries, opting in or out of the named ranking)
and /award PERSON POINTS reason (leaders, centre staff)."""

from __future__ import annotations

from workflows import points
from workflows.cards import local
from workflows.models import Person

from .registry import command
from .turn import Turn

SHOW_WORDS = {"公开", "show", "public"}
HIDE_WORDS = {"隐藏", "匿名", "hide", "private"}


@command("points", "我的积分：余额和最近的积分记录", private=True)
async def my_points(turn: Turn) -> None:
    if turn.person is None:
        await turn.say(turn.t("您还没有积分。上报的问题被立案后即可获得积分。"))
        return
    word = turn.text.strip().lower()
    if word in SHOW_WORDS or word in HIDE_WORDS:
        await points.set_show_name(turn.ctx, turn.person.id, word in SHOW_WORDS)
        await turn.say(turn.t("好的，月度积分排名中将显示您的姓名。") if word in SHOW_WORDS
                       else turn.t("好的，月度积分排名中将隐去您的部分姓名。"))
        return
    total = await points.balance(turn.ctx, turn.person.id)
    lines = [turn.t("您的积分：{n} 分（积分编号 P{id}，志愿服务时可告诉网格长）。", n=total, id=turn.person.id)]
    entries = [e for e in await points.recent(turn.ctx, turn.person.id) if e.points]
    if entries:
        lines.append(turn.t("最近的积分记录："))
        for e in entries:
            lines.append(f"{local(turn.ctx, e.at, '%m-%d')} {e.points:+d} {e.reason or ''}")
    lines.append(turn.t("月度排名默认隐去部分姓名；发送 /points 公开 可显示姓名，/points 隐藏 恢复。"))
    await turn.say("\n".join(lines))


@command("award", "奖励积分：/award 编号 分数 原因", private=True,
         roles=frozenset(str(r) for r in points.AWARD_ROLES))  # the rule's own roles, listed in /help
async def award(turn: Turn) -> None:
    parts = turn.text.split(maxsplit=2)
    if len(parts) < 3:
        await turn.say(turn.t("用法：/award 编号 分数 原因，例如：/award P12 5 帮助清理楼道"))
        return
    entry = await points.award(turn.ctx, turn.person.id, parts[0], parts[1], parts[2])
    person = await turn.session.get(Person, entry.person_id)
    total = await points.balance(turn.ctx, person.id)
    await turn.say(turn.t("已为 {name} 奖励 {n} 分（{reason}），其积分共 {total} 分。", name=person.name,
                          n=entry.points, reason=entry.reason, total=total))
