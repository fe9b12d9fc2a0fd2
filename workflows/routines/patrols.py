"""Patrols (一日双巡): reminders before each patrol time, the check-in, missed patrols, the diary.

Patrol times and the checklist are per grid (Node.patrol_times, Node.checklist) with the
defaults below, read in the grid's time zone. Each worker-slot is one routine_mark per stage
(patrol_remind, patrol_missed_30, patrol_missed_60), so each reminder goes out once.
"""

from __future__ import annotations

import zlib
from datetime import date, datetime, timedelta

from shapely.geometry import Point, shape
from sqlalchemy import func, select

from .. import rollup
from ..context import Ctx
from ..errors import Invalid, NotAllowed
from ..models import Assignment, Category, Node, Person, Role
from ..outbox import Msg
from ..tree import GRID_LEVELS
from .common import OutboxBatch, SweepResult, at_local, claim, local_now, zone
from .leave import covers_on
from .models import DiaryEntry, PatrolCheckin, RoutineMark

DEFAULT_TIMES = ["09:00", "15:00"]
DEFAULT_CHECKLIST = ["消防通道", "灭火器", "占道经营", "垃圾堆放", "安全隐患"]
REMIND_BEFORE = timedelta(minutes=15)
# What bulk reminders may count on sending per second: Telegram allows ~30/s for a bot, and replies
# to people and case cards go first (outbox priority). A city's morning — 10,000 grids x 5 workers
# due at one instant — takes ~33 minutes at this rate, so the reminders for a slot start going out
# early enough that the last one still arrives REMIND_BEFORE ahead of the patrol.
PLANNING_RATE = 25.0
PLANNING_MARGIN = 1.25
MISSED_WORKER = timedelta(minutes=30)
MISSED_GROUP = timedelta(minutes=60)
NEAR_METRES = 500
# checklist item → category a finding is filed under (by name; falls back to 其他 or the first)
ITEM_CATEGORY = {"消防通道": "消防安全隐患", "灭火器": "消防安全隐患", "安全隐患": "消防安全隐患",
                 "占道经营": "占道经营/设摊", "垃圾堆放": "环境卫生"}


def patrol_times(node: Node | None) -> list[str]:
    times = list(node.patrol_times or []) if node is not None else []
    return sorted(times) or DEFAULT_TIMES


def checklist(node: Node | None) -> list[str]:
    items = list(node.checklist or []) if node is not None else []
    return items or DEFAULT_CHECKLIST


def slot_for(times: list[str], local: datetime) -> str:
    """The patrol a check-in belongs to: the last slot starting within the next hour, else the first."""
    hhmm = (local + timedelta(hours=1)).strftime("%H:%M") if local.hour < 23 else "23:59"
    started = [t for t in times if t <= hhmm]
    return started[-1] if started else times[0]


async def _grids(ctx: Ctx) -> list[tuple[int, str, str | None, list[str]]]:
    rows = await ctx.session.execute(
        select(Node.id, Node.name, Node.timezone, Node.patrol_times).where(Node.level.in_([str(g) for g in GRID_LEVELS])))
    return [(r[0], r[1], r[2], sorted(r[3] or []) or DEFAULT_TIMES) for r in rows]


async def _workers(ctx: Ctx, grid_ids: set[int]) -> dict[int, list[tuple[int, int, str]]]:
    """{grid: [(assignment id, person id, name)]} for the given grids."""
    stmt = (select(Assignment.id, Assignment.node_id, Assignment.person_id, Person.name)
            .join(Person, Person.id == Assignment.person_id).where(Assignment.role == Role.worker))
    if len(grid_ids) <= 2000:
        stmt = stmt.where(Assignment.node_id.in_(grid_ids))
    out: dict[int, list[tuple[int, int, str]]] = {}
    for aid, nid, pid, name in await ctx.session.execute(stmt):
        if nid in grid_ids:
            out.setdefault(nid, []).append((aid, pid, name))
    return out


async def _warn_empty(ctx: Ctx, result: SweepResult, empty: list[tuple[int, str]], day: str) -> None:
    won = await claim(ctx, "warn_no_workers", [{"subject_id": g, "slot": day, "node_id": g} for g, _ in empty])
    for g, name in empty:
        if (g, day) in won:
            result.warn(f"网格 {name} 没有网格员，无法安排巡查。")
    result.add("grids_without_workers", len(won))


def sending_time(reminders: int, rate: float = PLANNING_RATE) -> timedelta:
    """How long `reminders` bulk messages take to leave, with a margin for the replies and cards
    that overtake them."""
    return timedelta(seconds=reminders / rate * PLANNING_MARGIN)


async def _worker_count(ctx: Ctx) -> dict[int, int]:
    rows = await ctx.session.execute(
        select(Assignment.node_id, func.count()).where(Assignment.role == Role.worker).group_by(Assignment.node_id))
    return dict(rows.all())


async def remind_sweep(ctx: Ctx, rate: float = PLANNING_RATE) -> SweepResult:
    """A reminder to each on-duty worker (or the covering partner) before each patrol: at the latest
    REMIND_BEFORE ahead, earlier when many grids share the same patrol instant (a city's 09:00), by
    the time their reminders take to send at `rate`."""
    result = SweepResult()
    now = ctx.now()
    total = (await ctx.session.execute(
        select(func.count()).select_from(Assignment).where(Assignment.role == Role.worker))).scalar_one()
    horizon = REMIND_BEFORE + sending_time(total, rate)  # no instant can need more than all workers
    upcoming: dict[datetime, list[tuple[int, str, str]]] = {}  # patrol instant -> [(grid, day, slot)]
    names: dict[int, str] = {}
    for gid, name, tz, times in await _grids(ctx):
        names[gid] = name
        loc = now.astimezone(zone(ctx, tz))
        for day in (loc.date(), loc.date() + timedelta(days=1)):
            for slot in times:
                start = at_local(day, slot, zone(ctx, tz))
                if now < start <= now + horizon:
                    upcoming.setdefault(start, []).append((gid, day.isoformat(), slot))
    due: dict[int, list[tuple[str, str]]] = {}  # grid -> [(day, slot)]
    counts: dict[int, int] | None = None
    for start, slots in upcoming.items():
        if start - REMIND_BEFORE > now:  # earlier than usual only if this instant's reminders need it
            counts = counts if counts is not None else await _worker_count(ctx)
            if start - REMIND_BEFORE - sending_time(sum(counts.get(g, 0) for g, _, _ in slots), rate) > now:
                continue
        for gid, day, slot in slots:
            due.setdefault(gid, []).append((day, slot))
    if not due:
        return result
    workers = await _workers(ctx, set(due))
    empty = [(g, names[g]) for g in due if not workers.get(g)]
    if empty:
        await _warn_empty(ctx, result, empty, local_now(ctx).date().isoformat())
    marks = [{"subject_id": aid, "slot": f"{day} {slot}", "node_id": g, "person_id": pid}
             for g, slots in due.items() for day, slot in slots for aid, pid, _ in workers.get(g, [])]
    won = await claim(ctx, "patrol_remind", marks)
    if not won:
        return result
    covers = await covers_on(ctx, local_now(ctx).date())
    person_name = {aid: (pid, name) for ws in workers.values() for aid, pid, name in ws}
    out = OutboxBatch(ctx)
    for m in marks:
        if (m["subject_id"], m["slot"]) not in won:
            continue
        pid, wname = person_name[m["subject_id"]]
        grid, slot = names[m["node_id"]], m["slot"][-5:]
        to = covers.get(pid, pid)

        def compose(t, grid=grid, slot=slot, wname=wname, cover=to != pid) -> Msg:
            text = t("【巡查提醒】{grid} {slot} 的巡查即将开始。到达后请私聊发送 /patrol 打卡，并逐项检查。",
                     grid=grid, slot=slot)
            if cover:
                text = t("{name} 请假，由您代岗。", name=wname) + text
            return Msg(text)

        out.to_person(to, compose, f"patrol_remind:{m['subject_id']}:{m['slot']}")
    written = await out.flush()
    result.add("reminded", len(won))
    result.add("undeliverable", written.get("undeliverable", 0))
    return result


PASSED_KIND = "patrol_missed_pass"  # (zone, stage, local day and slot) handled for every grid


def _pass_key(tz: str | None, stage: str, day: str, slot: str) -> tuple[int, str]:
    """A mark subject and slot for one threshold: every grid in one zone with that patrol time crosses
    it at the same instant, so once it is handled the next minute's sweep can skip it."""
    return zlib.crc32((tz or "").encode()), f"{stage} {day} {slot}"


async def _unhandled(ctx: Ctx, now: datetime) -> set[tuple[int, str]]:
    """The thresholds crossed today and not yet handled, from the few distinct patrol schedules."""
    crossed: set[tuple[int, str]] = set()
    rows = await ctx.session.execute(select(Node.timezone, Node.patrol_times).distinct()
                                     .where(Node.level.in_([str(g) for g in GRID_LEVELS])))
    for tz, times in rows:
        loc = now.astimezone(zone(ctx, tz))
        for slot in sorted(times or []) or DEFAULT_TIMES:
            start = at_local(loc.date(), slot, zone(ctx, tz))
            for stage, after in (("30", MISSED_WORKER), ("60", MISSED_GROUP)):
                if now >= start + after:
                    crossed.add(_pass_key(tz, stage, loc.date().isoformat(), slot))
    if not crossed:
        return crossed
    handled = await ctx.session.execute(select(RoutineMark.subject_id, RoutineMark.slot).where(
        RoutineMark.kind == PASSED_KIND, RoutineMark.slot.in_(sorted({k[1] for k in crossed}))))
    return crossed - {(r[0], r[1]) for r in handled}


async def missed_sweep(ctx: Ctx) -> SweepResult:
    """No check-in 30 min after a patrol time: remind the worker; after 60 min: tell the grid group.

    Each threshold is handled once, when first crossed (or at the first run after downtime); the
    minutes after cost two small queries, however many grids and check-ins there are."""
    result = SweepResult()
    now = ctx.now()
    todo = await _unhandled(ctx, now)
    if not todo:
        return result
    due: dict[int, list[tuple[str, str, str]]] = {}  # grid -> [(stage, day, slot)]
    names: dict[int, str] = {}
    days: set[str] = set()
    for gid, name, tz, times in await _grids(ctx):
        loc = now.astimezone(zone(ctx, tz))
        for slot in times:
            start = at_local(loc.date(), slot, zone(ctx, tz))
            for stage, after in (("30", MISSED_WORKER), ("60", MISSED_GROUP)):
                if now >= start + after and _pass_key(tz, stage, loc.date().isoformat(), slot) in todo:
                    due.setdefault(gid, []).append((stage, loc.date().isoformat(), slot))
                    names[gid] = name
                    days.add(loc.date().isoformat())
    await claim(ctx, PASSED_KIND, [{"subject_id": k[0], "slot": k[1]} for k in todo])
    if not due:
        return result
    workers = await _workers(ctx, set(due))
    done = set()
    if days:
        rows = await ctx.session.execute(
            select(PatrolCheckin.for_person_id, PatrolCheckin.node_id, PatrolCheckin.day, PatrolCheckin.slot)
            .where(PatrolCheckin.day.in_(sorted(days))))
        done = {tuple(r) for r in rows}
    covers = await covers_on(ctx, local_now(ctx).date())
    out = OutboxBatch(ctx)
    for stage in ("30", "60"):
        marks = [{"subject_id": aid, "slot": f"{day} {slot}", "node_id": g, "person_id": pid}
                 for g, items in due.items() for st, day, slot in items if st == stage
                 for aid, pid, _ in workers.get(g, []) if (pid, g, day, slot) not in done]
        won = await claim(ctx, f"patrol_missed_{stage}", marks)
        if stage == "60":
            await rollup.add_patrols(ctx.session, "patrols_missed",
                                     [(m["node_id"], now) for m in marks if (m["subject_id"], m["slot"]) in won])
        names_by_aid = {aid: name for ws in workers.values() for aid, _, name in ws}
        missed_by_grid: dict[tuple[int, str], list[str]] = {}
        for m in marks:
            if (m["subject_id"], m["slot"]) not in won:
                continue
            pid = m["person_id"]
            grid, slot = names[m["node_id"]], m["slot"][-5:]
            if stage == "30":
                to = covers.get(pid, pid)

                def compose(t, grid=grid, slot=slot) -> Msg:
                    return Msg(t("【巡查未打卡】{grid} {slot} 的巡查已过 30 分钟，还没有收到您的打卡。"
                                 "请尽快巡查并发送 /patrol 打卡。", grid=grid, slot=slot))

                out.to_person(to, compose, f"patrol_missed_30:{m['subject_id']}:{m['slot']}")
            else:
                missed_by_grid.setdefault((m["node_id"], m["slot"]), []).append(names_by_aid[m["subject_id"]])
        for (g, slot_key), people in missed_by_grid.items():
            listed = "、".join(people)

            def tell(t, grid=names[g], slot=slot_key[-5:], who=listed) -> Msg:
                return Msg(t("【巡查未完成】{grid} {slot} 的巡查已过 1 小时仍未打卡：{who}。请网格长跟进。",
                             grid=grid, slot=slot, who=who))

            out.to_group(g, tell, f"patrol_missed_60:{g}:{slot_key}")
        result.add(f"missed_{stage}", len(won))
    written = await out.flush()
    result.add("undeliverable", written.get("undeliverable", 0))
    return result


# ---------------------------------------------------------------- the check-in

async def duty_grids(ctx: Ctx, person_id: int) -> list[tuple[Node, int]]:
    """Grids this person patrols today: their own, and those of workers they cover — (grid, for whom)."""
    rows = await ctx.session.execute(
        select(Node).join(Assignment, Assignment.node_id == Node.id)
        .where(Assignment.person_id == person_id, Assignment.role == Role.worker).order_by(Node.code))
    out = [(n, person_id) for n in rows.scalars()]
    covers = await covers_on(ctx, local_now(ctx).date())
    for worker, cover in covers.items():
        if cover == person_id:
            rows = await ctx.session.execute(
                select(Node).join(Assignment, Assignment.node_id == Node.id)
                .where(Assignment.person_id == worker, Assignment.role == Role.worker).order_by(Node.code))
            out.extend((n, worker) for n in rows.scalars())
    return out


def distance_to(node: Node, lat: float, lon: float) -> float | None:
    """Metres from the grid's boundary (0 inside); None when the grid has no boundary."""
    if not node.boundary:
        return None
    geom = shape(node.boundary)
    point = Point(lon, lat)
    if geom.contains(point):
        return 0.0
    # degrees to metres, good enough at city scale (longitude shrinks with latitude)
    from math import cos, radians

    nearest = geom.exterior.interpolate(geom.exterior.project(point)) if hasattr(geom, "exterior") else None
    if nearest is None:
        return geom.distance(point) * 111_000
    dy = (point.y - nearest.y) * 111_000
    dx = (point.x - nearest.x) * 111_000 * cos(radians(lat))
    return (dx * dx + dy * dy) ** 0.5


def location_warning(node: Node, lat: float | None, lon: float | None) -> tuple[float | None, str | None]:
    if lat is None or lon is None:
        return None, "未提供位置"
    d = distance_to(node, lat, lon)
    if d is not None and d > NEAR_METRES:
        return d, f"打卡位置距网格边界约 {d:.0f} 米"
    return d, None


async def category_for(ctx: Ctx, item: str) -> int:
    wanted = [ITEM_CATEGORY.get(item, item), item, "其他"]
    rows = {name: cid for cid, name in await ctx.session.execute(select(Category.id, Category.name))}
    for name in wanted:
        if name in rows:
            return rows[name]
    if not rows:
        raise Invalid("系统里还没有问题类别，无法登记巡查发现的问题。")
    return (await ctx.session.execute(select(Category.id).order_by(Category.sort, Category.id).limit(1))).scalar_one()


async def record_checkin(ctx: Ctx, person_id: int, node_id: int, *, for_person_id: int | None = None,
                         latitude: float | None = None, longitude: float | None = None,
                         answers: list[dict] | None = None, photos: list | None = None) -> PatrolCheckin:
    """Record a patrol; every item answered "有问题" becomes a case (source patrol) in the same step."""
    from .. import cases

    node = await ctx.session.get(Node, node_id)
    if node is None:
        raise Invalid("找不到该网格。")
    allowed = {n.id for n, _ in await duty_grids(ctx, person_id)}
    if node_id not in allowed:
        raise NotAllowed("您不是 {node} 的网格员，不能在此打卡。", node=node.name)
    loc = local_now(ctx, node.timezone)
    distance, warning = location_warning(node, latitude, longitude)
    checkin = PatrolCheckin(person_id=person_id, for_person_id=for_person_id or person_id, node_id=node_id,
                            day=loc.date().isoformat(), slot=slot_for(patrol_times(node), loc), at=ctx.now(),
                            latitude=latitude, longitude=longitude, distance_m=distance, warning=warning,
                            answers=list(answers or []), photos=list(photos or []), case_ids=[])
    ctx.session.add(checkin)
    await rollup.add_patrols(ctx.session, "patrols_done", [(node_id, checkin.at)])
    case_ids = []
    for a in answers or []:
        if a.get("ok"):
            continue
        case = await cases.report(
            ctx, reporter_id=person_id, category_id=await category_for(ctx, a["item"]),
            description=f"【巡查发现】{a['item']}：{a.get('note') or '有问题'}", grid_id=node_id,
            attachments=list(photos or []), latitude=latitude, longitude=longitude, source="patrol")
        case_ids.append(case.id)
    checkin.case_ids = case_ids
    await ctx.session.flush()
    return checkin


# ---------------------------------------------------------------- the diary (民情日记)

async def write_diary(ctx: Ctx, person_id: int, text: str) -> DiaryEntry:
    text = (text or "").strip()
    if not text:
        raise Invalid("日记内容不能为空。")
    if len(text) > 2000:
        raise Invalid("日记太长了（{n} 字），请控制在 2000 字以内。", n=len(text))
    grids = await duty_grids(ctx, person_id)
    entry = DiaryEntry(person_id=person_id, node_id=grids[0][0].id if grids else None, at=ctx.now(), text=text)
    ctx.session.add(entry)
    await ctx.session.flush()
    return entry


async def recent_diary(ctx: Ctx, person_id: int, limit: int = 10) -> list[DiaryEntry]:
    rows = await ctx.session.execute(
        select(DiaryEntry).where(DiaryEntry.person_id == person_id)
        .order_by(DiaryEntry.at.desc(), DiaryEntry.id.desc()).limit(limit))
    return list(rows.scalars())


def day_of(ctx: Ctx, at: datetime) -> date:
    return at.astimezone(zone(ctx)).date()
