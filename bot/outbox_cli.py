"""`gridbot outbox`: what is waiting per channel, how old the oldest is, failures by reason.

An operator's view of the delivery queue: a queue that only grows, or an oldest message many
minutes old, means delivery is stuck or a platform is refusing us (see the reasons).
"""

from __future__ import annotations

import argparse
import asyncio
import re
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from workflows.clock import SystemClock
from workflows.inbox_models import InboxUpdate
from workflows.models import Lease, Outbox
from workflows.outbox import BULK, CARD, REPLY

from .senders import live_senders
from .settings import Settings

PRIORITY_NAMES = {REPLY: "replies", CARD: "cards", BULK: "bulk"}


def reason(error: str | None) -> str:
    """An error text without its ids and numbers, so the same trouble counts as one reason."""
    text = re.sub(r"\d+", "N", (error or "(no error text)").strip())
    return text[:80]


def age(delta: timedelta) -> str:
    s = int(delta.total_seconds())
    if s < 120:
        return f"{s}s"
    if s < 7200:
        return f"{s // 60}m"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


async def summary(session: AsyncSession, now: datetime, since: timedelta) -> dict:
    waiting = {}
    for channel, status, prio, n, oldest in await session.execute(
            select(Outbox.channel, Outbox.status, Outbox.priority, func.count(), func.min(Outbox.created_at))
            .where(Outbox.status.in_(("pending", "sending")))
            .group_by(Outbox.channel, Outbox.status, Outbox.priority)):
        ch = waiting.setdefault(channel, {"pending": 0, "sending": 0, "oldest": None, "by_priority": {}})
        ch[status] += n
        name = PRIORITY_NAMES.get(prio, str(prio))
        ch["by_priority"][name] = ch["by_priority"].get(name, 0) + n
        if ch["oldest"] is None or oldest < ch["oldest"]:
            ch["oldest"] = oldest
    due = dict((await session.execute(
        select(Outbox.channel, func.count()).where(Outbox.status == "pending", Outbox.not_before <= now)
        .group_by(Outbox.channel))).all())
    failures: dict[str, dict[str, int]] = {}
    for channel, status, error in await session.execute(
            select(Outbox.channel, Outbox.status, Outbox.error)
            # a webhook retried for a day fails long after it was written: its last try (not_before) counts
            .where(Outbox.status.in_(("failed", "undeliverable")),
                   or_(Outbox.created_at >= now - since, Outbox.not_before >= now - since))):
        key = f"{status}: {reason(error)}"
        per = failures.setdefault(channel, {})
        per[key] = per.get(key, 0) + 1
    sent = dict((await session.execute(
        select(Outbox.channel, func.count()).where(Outbox.status == "sent", Outbox.sent_at >= now - since)
        .group_by(Outbox.channel))).all())
    senders = [s.host for s in await live_senders(session)]
    inbox = {channel: (n, oldest) for channel, n, oldest in await session.execute(
        select(InboxUpdate.channel, func.count(), func.min(InboxUpdate.received_at))
        .where(InboxUpdate.status == "pending").group_by(InboxUpdate.channel))}
    holders = {row.name: row.host for row in (await session.execute(
        select(Lease).where(Lease.until >= datetime.now(UTC)))).scalars()}
    return {"waiting": waiting, "due": due, "failures": failures, "sent": sent, "senders": senders,
            "inbox": inbox, "holders": holders}


def render(data: dict, now: datetime, since: timedelta) -> str:
    lines = [f"{'channel':<18} {'waiting':>8} {'due now':>8} {'sending':>8} {'oldest':>8}  by priority"]
    channels = sorted(set(data["waiting"]) | set(data["failures"]) | set(data["sent"]))
    for ch in channels:
        w = data["waiting"].get(ch, {"pending": 0, "sending": 0, "oldest": None, "by_priority": {}})
        oldest = age(now - w["oldest"]) if w["oldest"] else "-"
        prio = ", ".join(f"{k} {v}" for k, v in sorted(w["by_priority"].items())) or "-"
        lines.append(f"{ch:<18} {w['pending']:>8} {data['due'].get(ch, 0):>8} {w['sending']:>8} {oldest:>8}  {prio}")
    if not channels:
        lines.append("(the outbox is empty)")
    hours = since.total_seconds() / 3600
    lines.append("")
    lines.append(f"last {hours:g} h: sent " + (", ".join(f"{c} {n}" for c, n in sorted(data["sent"].items())) or "0"))
    if data["failures"]:
        lines.append(f"failures in the last {hours:g} h, by reason:")
        for ch, reasons in sorted(data["failures"].items()):
            for key, n in sorted(reasons.items(), key=lambda kv: -kv[1]):
                lines.append(f"  {ch:<16} {n:>6}  {key}")
    else:
        lines.append(f"no failures in the last {hours:g} h")
    senders = data.get("senders", [])
    lines.append(f"delivery workers running: {len(senders)}" + (f" ({', '.join(senders)}; each sends to 1/"
                 f"{len(senders)} of the chats at 1/{len(senders)} of the overall rate)" if senders else ""))
    # the way in: updates stored and not yet handled, and which process polls and handles them
    for channel, (n, oldest) in sorted(data.get("inbox", {}).items()):
        lines.append(f"inbound {channel}: {n} stored, not yet handled (oldest {age(now - oldest)})")
    for name, host in sorted(data.get("holders", {}).items()):
        lines.append(f"inbound {name}: polled and handled by {host}")
    return "\n".join(lines)


def cmd_outbox(args: argparse.Namespace, settings: Settings) -> int:
    from .cli import with_session

    since = timedelta(hours=args.hours)

    async def show(session: AsyncSession) -> int:
        now = SystemClock().now()
        print(render(await summary(session, now, since), now, since))
        return 0

    return asyncio.run(with_session(settings, show))


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("outbox", help="the delivery queue: waiting per channel, oldest age, failures by reason")
    p.add_argument("--hours", type=float, default=24.0, help="failures and sends over this many hours (24)")
    p.set_defaults(fn=cmd_outbox)
