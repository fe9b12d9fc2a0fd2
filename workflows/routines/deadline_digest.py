"""The deadline sweep's digest: when one run turns more than N cases yellow or red for one group
or person (a burst — a holiday's backlog, a restart after downtime), they get ONE message with the
counts and the case numbers instead of one card notice per case, the most overdue first; each
number is reachable with /case NUMBER. Below N the per-case messages go as before; reminders
(50 %, 80 %) always go per case.

The cases themselves carry their cards: the yellow/red card is a case event, shown on the next
/case view and counted in the statistics, whichever way the notice went.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from ..i18n import T, _
from ..outbox import Msg

DIGEST_OVER = 5  # DEADLINE_DIGEST_OVER: more notices than this for one chat in one run → a digest
MAX_LISTED = 100  # case numbers written out in one digest; the counts always cover all

# most overdue first
SECTIONS = (
    ("red_card", _("红牌督办（超时限一倍）")),
    ("supervise", _("请上级督办（超时限一倍）")),
    ("yellow_card", _("黄牌警告（已超时限）")),
)
CARD_ACTIONS = frozenset(a for a, _label in SECTIONS)
ORDER = {a: n for n, (a, _label) in enumerate(SECTIONS)}


@dataclass
class Notice:
    """One case's notice for one chat, as the per-case message or as a line of a digest."""

    action: str  # remind_50 | remind_80 | yellow_card | red_card | supervise (the level above)
    case_id: int
    number: str
    deadline: datetime
    compose: Callable[[T], Msg]
    key: str


def configure(over: int) -> None:
    """The process's threshold, from the settings (DEADLINE_DIGEST_OVER), set by the scheduler and CLI."""
    global DIGEST_OVER
    if over < 0:
        raise ValueError("DEADLINE_DIGEST_OVER must be 0 or more")
    DIGEST_OVER = over


def digest(notices: list[Notice]) -> Callable[[T], Msg]:
    ordered = sorted(notices, key=lambda n: (ORDER[n.action], n.deadline, n.number))
    counts: dict[str, int] = {}
    for n in ordered:
        counts[n.action] = counts.get(n.action, 0) + 1

    def compose(t: T) -> Msg:
        lines = [t("【办结时限汇总】本次检查共 {total} 件事件需要处理：", total=len(ordered))]
        listed = 0
        for action, label in SECTIONS:
            if action not in counts:
                continue
            numbers = [n.number for n in ordered if n.action == action][:max(0, MAX_LISTED - listed)]
            listed += len(numbers)
            lines.append(t("{label} {count} 件：{numbers}", label=t(label), count=counts[action],
                           numbers=" ".join(numbers) or "…"))
        if listed < len(ordered):
            lines.append(t("（另有 {count} 件未列出编号）", count=len(ordered) - listed))
        lines.append(t("发送 /case 编号 查看详情并办理，例如 /case {number}", number=ordered[0].number))
        return Msg("\n".join(lines))

    return compose


def digest_key(chat: str, notices: list[Notice], now: datetime) -> str:
    """One digest per chat and run: a second batch of the same run (same clock) has other cases."""
    return f"dl-digest:{chat}:{now:%Y%m%dT%H%M%S}:{min(n.case_id for n in notices)}"
