"""The console's case pages: the filtered list (and its Excel export), one case with its card,
timeline, media and the actions the person may take now, and the scoped media route."""

from __future__ import annotations

import io
from datetime import date
from urllib.parse import urlencode

from aiohttp import web
from sqlalchemy import select

from workflows import case_list, cases, deadlines, maps, scope
from workflows.cards import (
    ACTION_LABELS,
    STATUS_LABELS,
    URGENCY_LABELS,
    actor_label,
    card_actions,
    card_text,
    local,
)
from workflows.errors import Invalid, NotAllowed, WrongState
from workflows.i18n import category_name
from workflows.ledger_xlsx import write_xlsx
from workflows.ledgers import SOURCE_LABELS, filtered_case_ledger
from workflows.media_models import MediaItem
from workflows.media_store import current_store
from workflows.models import Category, Level, Node, Person
from workflows.tree import can_dispatch, get_node, level_name, path_of

from .core import Refused, Viewer, page, redirect

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
CHANNEL_LABELS = {"telegram": "Telegram", "wecom": "企业微信", "wechat_kf": "微信客服", "terminal": "终端",
                  "open311": "Open311", "console": "网页控制台"}
MAX_NODE_OPTIONS = 500
# the chat's card actions the console offers, and "send down" (下派), which the chat has no button for
FORM_ACTIONS = {"case.register", "case.assign", "case.ask_more", "case.decline", "case.escalate",
                "case.verify_pass", "case.rework"}


# ---------------------------------------------------------------- the list

async def _filters(viewer: Viewer, q) -> case_list.Filters:
    f = case_list.Filters()
    if q.get("node"):
        node = await viewer.node(q["node"])
        f.node_path = node.path or await path_of(viewer.ctx.session, node.id)
    f.status = q.get("status") or None
    if f.status and f.status not in ("open", "closed", *STATUS_LABELS):
        raise Invalid("未知的事件状态：{status}", status=f.status[:20])
    f.category_id = _int(q.get("category"))
    f.overdue = q.get("overdue") == "1"
    f.card = q.get("card") if q.get("card") in ("yellow", "red") else None
    f.source = (q.get("source") or None) and q["source"][:20]
    f.channel = (q.get("channel") or None) and q["channel"][:20]
    f.first, f.last = case_list.local_date(q.get("first")), case_list.local_date(q.get("last"))
    f.text = (q.get("q") or "").strip()[:100] or None
    return f


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value else None
    except ValueError:
        return None


async def _node_options(viewer: Viewer) -> list[tuple[int, str]]:
    """The nodes the person may filter by: their subtrees, indented by depth (grids last, capped)."""
    rows = (await viewer.ctx.session.execute(
        select(Node.id, Node.name, Node.level, Node.path).where(Node.id.in_(scope.nodes_under(viewer.paths)))
        .order_by(Node.path).limit(MAX_NODE_OPTIONS))).all()
    top = min((r.path.count("/") for r in rows), default=0)
    return [(r.id, "　" * (r.path.count("/") - top) + r.name) for r in rows]


@page("/console/cases", template="cases.html", nav="事件", order=10, summary="Console: the case list")
async def case_list_page(viewer: Viewer, request: web.Request) -> dict:
    q = request.query
    f = await _filters(viewer, q)
    sort = q.get("sort") if q.get("sort") in case_list.SORTS else "created"
    descending = q.get("dir") != "asc"
    found = await case_list.find(viewer.ctx, viewer.paths, f, sort=sort, descending=descending,
                                 page=_int(q.get("page")) or 1)
    t = viewer.t
    ctx = viewer.ctx
    cats = list((await ctx.session.execute(select(Category).order_by(Category.sort, Category.id))).scalars())
    cat_names = {c.id: category_name(t, c) for c in cats}
    node_ids = {c.grid_id for c in found.cases} | {c.level_node_id for c in found.cases}
    nodes = dict((await ctx.session.execute(select(Node.id, Node.name).where(Node.id.in_(node_ids)))).all())
    now = ctx.now()
    stages = await deadlines.stage_of(ctx, [c.id for c in found.cases])
    rows = [{
        "id": c.id, "number": c.number, "created": local(ctx, c.created_at, "%Y-%m-%d %H:%M"),
        "category": cat_names.get(c.category_id, ""), "grid": nodes.get(c.grid_id, ""),
        "level": nodes.get(c.level_node_id, "") if c.level_node_id != c.grid_id else "",
        "status": t(STATUS_LABELS.get(c.status, c.status)), "status_code": c.status,
        "deadline": local(ctx, c.deadline_at, "%Y-%m-%d %H:%M") if c.deadline_at else "",
        "overdue": cases.is_overdue(c, now), "card": deadlines.card_colour(stages.get(c.id, 0)) or "",
        "description": c.description[:80],
    } for c in found.cases]
    query = {k: v for k, v in q.items() if k not in ("page",)}

    def link(**change) -> str:
        return "/console/cases?" + urlencode({**query, **{k: v for k, v in change.items() if v is not None}})

    def sort_link(key: str) -> str:
        flip = "asc" if (sort == key and descending) else "desc"
        return link(sort=key, dir=flip, page=None)

    return {
        "_template": "cases_table.html" if request.headers.get("HX-Request") else None,
        "rows": rows, "found": found, "q": q, "link": link, "sort_link": sort_link, "sort": sort,
        "descending": descending, "categories": [(c.id, cat_names[c.id]) for c in cats],
        "statuses": [(k, t(v)) for k, v in STATUS_LABELS.items()],
        "sources": [(k, t(v)) for k, v in SOURCE_LABELS.items()],
        "channels": [(k, t(v)) for k, v in CHANNEL_LABELS.items()],
        "nodes": await _node_options(viewer),
        "export": "/console/cases.xlsx?" + urlencode(query),
        "refresh": "/console/cases?" + urlencode(q),
    }


@page("/console/cases.xlsx", summary="Console: the filtered case list as an Excel case ledger")
async def export(viewer: Viewer, request: web.Request) -> web.StreamResponse:
    f = await _filters(viewer, request.query)
    where = case_list.conditions(viewer.ctx, viewer.paths, f)
    title_node = await _title_node(viewer, request.query.get("node"))
    today = viewer.ctx.now().date()
    ledger = filtered_case_ledger(viewer.ctx, viewer.t, title_node, f.first or date(today.year, 1, 1),
                                  f.last or today, where)
    buf = io.BytesIO()
    await write_xlsx(viewer.t, ledger, buf)
    name = f"cases-{today.isoformat()}.xlsx"
    return web.Response(body=buf.getvalue(), content_type=XLSX,
                        headers={"Content-Disposition": f'attachment; filename="{name}"',
                                 "Cache-Control": "no-store"})


async def _title_node(viewer: Viewer, node_id: str | None) -> Node:
    if node_id:
        return await viewer.node(node_id)
    first = viewer.paths[0] if viewer.paths else None
    nid = int(first.strip("/").split("/")[-1]) if first else None
    node = await viewer.ctx.session.get(Node, nid) if nid else None
    return node or Node(name=viewer.person.name, code="-", level=Level.grid)


# ---------------------------------------------------------------- one case

async def offered(viewer: Viewer, case) -> list[str]:
    """The actions this person may take on the case now: the chat card's buttons (the same
    predicates: the holder's dispatchers, by the case's state), 下派 to a node below, 督办 from a
    level above and 批注 (workflows.cases.may_urge / may_comment)."""
    ctx = viewer.ctx
    level = await get_node(ctx, case.level_node_id)
    out = []
    if await can_dispatch(ctx, viewer.person.id, level):
        out = [a for row in card_actions(case, case.level_node_id) for _label, a in row if a in FORM_ACTIONS]
        if await cases.send_down_targets(ctx, viewer.person.id, case):
            out.append("case.send_down")
    if await cases.may_urge(ctx, viewer.person.id, case):
        out.append("case.urge")
    if await cases.may_comment(ctx, viewer.person.id, case):
        out.append("case.comment")
    return out


@page("/console/cases/{id}", template="case.html", summary="Console: one case")
async def case_page(viewer: Viewer, request: web.Request) -> dict:
    case = await viewer.case(request.match_info["id"])
    ctx, t = viewer.ctx, viewer.t
    events = await cases.history(ctx, case.id)
    ids = {e.actor_id for e in events if e.actor_id}
    people = dict((await ctx.session.execute(select(Person.id, Person.name).where(Person.id.in_(ids)))).all())
    timeline = [{
        "at": local(ctx, e.at, "%Y-%m-%d %H:%M"), "who": actor_label(t, case, e.actor_id, people),
        "what": t(ACTION_LABELS.get(e.action, e.action)),
        "to": (e.data or {}).get("to") or "", "note": e.note or "",
        "channel": t(CHANNEL_LABELS.get(e.channel, e.channel)) if e.channel else "",
    } for e in events]
    media = list((await ctx.session.execute(
        select(MediaItem).where(MediaItem.case_id == case.id).order_by(MediaItem.id))).scalars())
    actions = await offered(viewer, case)
    workers, teams, default_team = (await cases.dispatch_choices(ctx, case)) if "case.assign" in actions \
        else ([], [], None)
    below = [(n.id, n.name) for n in await cases.send_down_targets(ctx, viewer.person.id, case)] \
        if "case.send_down" in actions else []
    grid = await get_node(ctx, case.grid_id)
    level = await get_node(ctx, case.level_node_id)
    return {
        "case": case, "card": await card_text(ctx, t, case), "timeline": timeline,
        "status_label": t(STATUS_LABELS.get(case.status, case.status)),
        "urgency": t(URGENCY_LABELS.get(case.urgency, case.urgency)),
        "grid": grid, "level": level, "level_label": t(level_name(level.level)),
        "map_link": maps.amap_link(case.latitude, case.longitude, case.address or "")
        if case.latitude is not None and case.longitude is not None else None,
        "media": media, "actions": actions, "workers": workers, "teams": teams, "default_team": default_team,
        "below": below,
    }


@page("/console/cases/{id}/act", method="POST", summary="Console: an action on a case (form post)")
async def act(viewer: Viewer, request: web.Request) -> web.StreamResponse:
    form = await request.post()
    case = await viewer.case(request.match_info["id"], lock=True)
    # the page the form came from must still be current, like a card's button (handlers.leader._fresh)
    if form.get("status") != case.status or str(form.get("level")) != str(case.level_node_id):
        raise WrongState("该事件已有新进展，这个按钮已失效。")
    action = str(form.get("action") or "")
    if action not in await offered(viewer, case):
        raise NotAllowed("您现在不能对该事件进行此操作。")
    ctx, me, reason = viewer.ctx, viewer.person.id, str(form.get("reason") or "")
    if action == "case.register":
        await cases.register(ctx, me, case.id)
    elif action == "case.assign":
        target = str(form.get("to") or "")
        kind, _sep, tid = target.partition(":")
        if kind not in ("person", "team") or not tid.isdigit():
            raise Invalid("请选择一名承办人或一个处置团队。")
        workers, teams, _default = await cases.dispatch_choices(ctx, case)
        allowed = {f"person:{w.id}" for w in workers} | {f"team:{tm.id}" for tm in teams}
        if target not in allowed:
            raise Invalid("请选择一名承办人或一个处置团队。")
        await cases.dispatch(ctx, me, case.id, assignee_id=int(tid) if kind == "person" else None,
                             team_id=int(tid) if kind == "team" else None, note=reason or None)
    elif action == "case.ask_more":
        await cases.ask_more(ctx, me, case.id, reason)
    elif action == "case.decline":
        await cases.decline(ctx, me, case.id, reason)
    elif action == "case.escalate":
        await cases.escalate(ctx, me, case.id, reason)
    elif action == "case.verify_pass":
        await cases.verify(ctx, me, case.id, passed=True)
    elif action == "case.rework":
        await cases.verify(ctx, me, case.id, passed=False, reason=reason)
    elif action == "case.send_down":
        node_id = _int(str(form.get("node") or ""))
        if node_id is None:
            raise Invalid("请选择要下派的节点。")
        await cases.send_down(ctx, me, case.id, node_id, reason or None)
    elif action == "case.urge":
        await cases.urge(ctx, me, case.id, reason)
    elif action == "case.comment":
        await cases.comment(ctx, me, case.id, reason)
    return redirect(f"/console/cases/{case.id}")


@page("/console/media/{item}", summary="Console: a photo, voice or file of a case in scope")
async def media_file(viewer: Viewer, request: web.Request) -> web.StreamResponse:
    item = await viewer.ctx.session.get(MediaItem, _int(request.match_info["item"]) or 0)
    if item is None or item.case_id is None:
        raise Refused(404, "找不到该文件。")
    await viewer.case(item.case_id)  # out of scope: the same 404
    data = await current_store().get(item.sha256) if item.status == "stored" and item.sha256 else None
    if data is None:
        raise Refused(404, "文件还没有保存到媒体库，请稍后再试。")
    return web.Response(body=data, content_type=item.mime or "application/octet-stream",
                        headers={"Content-Disposition": "inline", "X-Content-Type-Options": "nosniff",
                                 "Cache-Control": "private, max-age=3600"})

