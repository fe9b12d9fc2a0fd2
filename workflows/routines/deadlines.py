"""The deadline sweep (限时办结): reminders at 50% and 80%, yellow card at the limit, red card and
supervision (督办) by the level above at twice the limit.

One indexed query takes every case whose next check has come (case_deadline, ix_case_deadline_due),
locking those rows with FOR UPDATE SKIP LOCKED on PostgreSQL so a second process skips them; a
case no longer open has its checks stopped there. Each
case jumps to the last checkpoint it has crossed — after downtime a case past its limit gets one
yellow card, not two reminders and a card. The stage, the next check, the case events and the
messages are written in bulk, in the sweep's transaction. A chat that would get more than
DIGEST_OVER notices from one run gets one digest instead (deadline_digest.py).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy import func, insert, select, text, true, update

from .. import rollup
from ..cards import local
from ..context import Ctx, core_rows
from ..deadlines import STAGE_NAMES, STAGES
from ..models import OPEN_STATUSES, Case, CaseDeadline, CaseEvent, Category, Node, Team, TeamMember
from ..outbox import Msg
from . import deadline_digest
from .common import OutboxBatch, SweepResult, among, chunks, is_pg, pg_copy
from .deadline_digest import CARD_ACTIONS, Notice, digest, digest_key
from .leave import covers_on, today

EVENT_PG = (("case_id", "bigint"), ("at", "timestamptz"), ("actor_id", "bigint"), ("action", "text"),
            ("note", "text"), ("attachments", "jsonb"), ("channel", "text"), ("chat_id", "text"), ("data", "jsonb"))
BATCH = 50_000  # cases per transaction; the runner repeats the sweep while a batch is full
# transactions at once on PostgreSQL (sweeps.run_sweep), each over the grids with id % LANES == i:
# a grid's cases stay in one lane (one digest per grid), and while one lane's batch is written by
# the database the other's is composed in Python — a 200,000-card burst 16.8 -> 10.2 s on 2 cores
LANES = 2


def reached(registered: datetime, deadline: datetime, now: datetime, stage: int) -> int:
    """How many stages have fallen due by now (>= stage)."""
    span = deadline - registered
    n = stage
    while n < len(STAGES) and registered + span * STAGES[n] <= now:
        n += 1
    return n


def next_check(registered: datetime, deadline: datetime, stage: int) -> datetime | None:
    if stage >= len(STAGES):
        return None
    return registered + (deadline - registered) * STAGES[stage]


async def sweep(ctx: Ctx, limit: int = BATCH, digest_over: int | None = None,
                lane: tuple[int, int] | None = None, claimed: Callable[[], None] | None = None) -> SweepResult:
    """One pass over the cases due; `digest_over` overrides DIGEST_OVER (the setting) for a call;
    `lane` (i, n) takes only the cases of the grids with id % n == i; `claimed` is called once the
    due rows are read and locked (the runner starts the next lane then)."""
    result = SweepResult()
    now = ctx.now()
    # most minutes nothing is due: the earliest next check (one step down the partial index)
    # says so before the read below is planned, which stale statistics can make a full scan
    first = await ctx.session.scalar(select(func.min(CaseDeadline.next_check_at))
                                     .where(CaseDeadline.next_check_at.is_not(None)))
    if first is None or first > now:
        if claimed is not None:
            claimed()
        return result
    if is_pg(ctx):
        # for this transaction, in one round trip: no JIT (the LATERAL read is costed at millions,
        # over the JIT threshold; compiling took ~90 ms, more than the read of a small batch), and
        # no hash joins: the UPDATE … FROM unnest and add_cards' anti-join are keyed by the due
        # ids, a small share of tables of millions, and the planner (its estimates stale after a
        # burst) hashed all of case_deadline and case_contribution per batch, twice as slow as
        # probing their primary keys
        await ctx.session.execute(text(
            "SELECT set_config('jit', 'off', true), set_config('enable_hashjoin', 'off', true)"))
    due = (await core_rows(ctx.session, _due(ctx, now, limit, lane))).all()  # a burst reads 200,000
    if claimed is not None:
        claimed()
    result.add("due", len(due))
    if not due:
        return result

    updates, events = [], []
    acts: list[tuple] = []
    open_ = {str(s) for s in OPEN_STATUSES}
    for row in due:
        cid, number, reg, dl, assignee, team, grid, level, cat, status, stage = row
        if reg is None or dl is None or status not in open_:  # closed some other way: stop checking
            updates.append({"case_id": cid, "stage": stage, "next_check_at": None})
            continue
        new = reached(reg, dl, now, stage)
        updates.append({"case_id": cid, "stage": new, "next_check_at": next_check(reg, dl, new)})
        if new == stage:
            continue  # the check time moved (e.g. a new deadline) — only reschedule
        action = STAGE_NAMES[new - 1]
        events.append({"case_id": cid, "at": now, "actor_id": None, "action": action, "note": None,
                       "attachments": [], "channel": None, "chat_id": None,
                       "data": {"stage": new, "deadline_at": dl.isoformat()}})
        acts.append((action, row))
        result.add(action)

    if is_pg(ctx):
        await ctx.session.execute(text(
            "UPDATE case_deadline AS d SET stage = v.stage, next_check_at = v.nxt "
            "FROM unnest(CAST(:ids AS bigint[]), CAST(:stages AS int[]), CAST(:nxts AS timestamptz[])) "
            "AS v(id, stage, nxt) WHERE d.case_id = v.id"),
            {"ids": [u["case_id"] for u in updates], "stages": [u["stage"] for u in updates],
             "nxts": [u["next_check_at"] for u in updates]})
        await pg_copy(ctx, "case_event", EVENT_PG, events)
    else:
        for part in chunks(updates, 5000):
            await ctx.session.execute(update(CaseDeadline), part)  # bulk UPDATE by primary key
        for part in chunks(events, 5000):
            await ctx.session.execute(insert(CaseEvent), part)
    await rollup.add_cards(ctx.session, [(row.id, row.grid_id, action, now) for action, row in acts
                                         if action in rollup.CARD_FIELDS])
    await _tell(ctx, acts, result, deadline_digest.DIGEST_OVER if digest_over is None else digest_over)
    return result


# what the sweep reads of each due case; the row ends with its stage (case_deadline.stage)
DUE_COLUMNS = (Case.id, Case.number, Case.registered_at, Case.deadline_at, Case.assignee_id, Case.team_id,
               Case.grid_id, Case.level_node_id, Category.name, Case.status)


def _due(ctx: Ctx, now: datetime, limit: int, lane: tuple[int, int] | None):
    """The cases whose next check has come, by grid: a burst larger than one batch gives each grid
    (and its people) all its cases in one batch, so one digest, not one per batch.

    On PostgreSQL the due rows (ix_case_deadline_due) drive, each case read by primary key inside
    a LATERAL subquery that OFFSET 0 keeps from being flattened: left to the planner, fresh
    statistics after a burst made it walk case_file in grid order probing every case for being due
    (24–32 s for a 200,000 burst in bench.city instead of 3 s), and stale ones made it hash all of
    case_file for each batch. The case_deadline rows are locked (SKIP LOCKED: another process
    takes the others)."""
    due_now = (CaseDeadline.next_check_at <= now, CaseDeadline.next_check_at.is_not(None))
    in_lane = () if lane is None else (Case.grid_id % lane[1] == lane[0],)
    if not is_pg(ctx):
        return (select(*DUE_COLUMNS, CaseDeadline.stage).join_from(CaseDeadline, Case, Case.id == CaseDeadline.case_id)
                .join(Category, Category.id == Case.category_id).where(*due_now, *in_lane)
                .order_by(Case.grid_id, CaseDeadline.next_check_at, Case.id).limit(limit))
    case = (select(*DUE_COLUMNS).join(Category, Category.id == Case.category_id)
            .where(Case.id == CaseDeadline.case_id, *in_lane).offset(0).lateral("c"))
    return (select(*case.c, CaseDeadline.stage).select_from(CaseDeadline).join(case, true()).where(*due_now)
            .order_by(case.c.grid_id, CaseDeadline.next_check_at, case.c.id).limit(limit)
            .with_for_update(of=CaseDeadline, skip_locked=True))


async def _tell(ctx: Ctx, acts: list[tuple], result: SweepResult, over: int) -> None:
    if not acts:
        return
    covers = await covers_on(ctx, today(ctx))
    teams = {r.team_id for _, r in acts if r.team_id}
    leads: dict[int, int | None] = {}
    members: dict[int, list[int]] = {}
    if teams:
        for tid, lead in await ctx.session.execute(select(Team.id, Team.lead_id).where(among(ctx, Team.id, list(teams)))):
            leads[tid] = lead
        for tid, pid in await ctx.session.execute(
                select(TeamMember.team_id, TeamMember.person_id).where(among(ctx, TeamMember.team_id, list(teams)))):
            members.setdefault(tid, []).append(pid)
    parents: dict[int, int | None] = {}
    levels = {r.level_node_id for a, r in acts if a == "red_card"}
    if levels:
        for nid, parent in await ctx.session.execute(select(Node.id, Node.parent_id).where(among(ctx, Node.id, list(levels)))):
            parents[nid] = parent

    # every notice of this run, per chat (a person, a group), in case order: a chat with more
    # than `over` gets one digest instead (deadline_digest.py)
    chats: dict[tuple[str, int], list[Notice]] = {}

    def notice(kind: str, rid: int, action: str, cid: int, number: str, dl: datetime, compose, key: str) -> None:
        chats.setdefault((kind, rid), []).append(Notice(action, cid, number, dl, compose, key))

    for action, (cid, number, _reg, dl, assignee, team, grid, level, cat, _status, _stage) in acts:
        at = local(ctx, dl, "%m-%d %H:%M")
        who = [assignee] if assignee else ([leads[team]] if team and leads.get(team) else members.get(team, []))
        who = [covers.get(p, p) for p in who if p]
        key = f"dl:{cid}:{action}"

        def text(t, action=action, number=number, cat=cat, at=at) -> Msg:
            if action == "remind_50":
                return Msg(t("【催办】事件 {number}（{category}）办理时限已过半，请抓紧办理。时限：{at}",
                             number=number, category=cat, at=at))
            if action == "remind_80":
                return Msg(t("【催办】事件 {number}（{category}）即将到期，请尽快办结。时限：{at}",
                             number=number, category=cat, at=at))
            if action == "yellow_card":
                return Msg(t("【黄牌警告】事件 {number}（{category}）已超过办结时限（{at}），请立即办理并说明原因。",
                             number=number, category=cat, at=at))
            return Msg(t("【红牌督办】事件 {number}（{category}）已超时限一倍仍未办结（时限 {at}），已报上级督办。",
                         number=number, category=cat, at=at))

        if action in ("remind_50", "remind_80"):
            if who:
                for p in who:
                    notice("p", p, action, cid, number, dl, text, f"{key}:p{p}")
            else:  # nobody holds it yet (waiting for dispatch or verification): the holder's group
                notice("g", level, action, cid, number, dl, text, f"{key}:g{level}")
            continue
        recipients = set(who)
        if team and leads.get(team):
            recipients.add(leads[team])
        for p in sorted(recipients):
            notice("p", p, action, cid, number, dl, text, f"{key}:p{p}")
        notice("g", grid, action, cid, number, dl, text, f"{key}:g{grid}")
        if level != grid:
            notice("g", level, action, cid, number, dl, text, f"{key}:g{level}")
        if action == "red_card":
            above = parents.get(level) or level

            def supervise(t, number=number, cat=cat, at=at) -> Msg:
                return Msg(t("【督办】事件 {number}（{category}）超过时限一倍仍未办结（时限 {at}），请上级督促办理。",
                             number=number, category=cat, at=at)
                           + "\n" + t("发送 /case {number} 查看详情并督办。", number=number))

            notice("g", above, "supervise", cid, number, dl, supervise, f"{key}:supervise:g{above}")

    out = OutboxBatch(ctx)
    for (kind, rid), notices in chats.items():
        send = out.to_person if kind == "p" else out.to_group
        cards = [n for n in notices if n.action in CARD_ACTIONS]
        if len(cards) > over:  # the product's rule: a burst of yellow/red cards, not of reminders
            send(rid, digest(cards), digest_key(f"{kind}{rid}", cards, ctx.now()))
            result.add("digests")
            result.add("digested", len(cards))
            notices = [n for n in notices if n.action not in CARD_ACTIONS]
        for n in notices:
            send(rid, n.compose, n.key)
    written = await out.flush()
    result.add("messages", written.get("pending", 0))
    result.add("undeliverable", written.get("undeliverable", 0))
