"""The console's dashboard (辅助决策平台) for a node in the person's scope: the figures of
workflows.dashboard (rollup.figures, as /stats and the weekly report) as numbers and Chart.js
charts. The figures block is an htmx fragment the page fetches again every few seconds."""

from __future__ import annotations

from aiohttp import web
from sqlalchemy import select

from workflows import dashboard, scope
from workflows.models import Node
from workflows.routines.reports import pct
from workflows.tree import GRID_LEVELS, level_name

from .core import Viewer, page
from .maps import REFRESH_SECONDS

MAX_NODE_OPTIONS = 300


async def _node(viewer: Viewer, node_id: str | None) -> Node:
    """The asked node (in scope, else 404), or the top of the person's scope."""
    if node_id:
        return await viewer.node(node_id)
    top = viewer.paths[0].strip("/").split("/")[-1] if viewer.paths else "0"
    return await viewer.node(top)


async def _options(viewer: Viewer) -> list[tuple[int, str]]:
    """The nodes above the grids in scope (and the scope's own nodes), indented by depth."""
    rows = (await viewer.ctx.session.execute(
        select(Node.id, Node.name, Node.level, Node.path).where(Node.id.in_(scope.nodes_under(viewer.paths)))
        .order_by(Node.path).limit(5000))).all()
    top = min((r.path.count("/") for r in rows), default=0)
    keep = [r for r in rows if r.level not in GRID_LEVELS or r.path.count("/") == top][:MAX_NODE_OPTIONS]
    return [(r.id, "　" * (r.path.count("/") - top) + r.name) for r in keep]


async def _values(viewer: Viewer, request: web.Request) -> dict:
    node = await _node(viewer, request.query.get("node"))
    d = await dashboard.build(viewer.ctx, viewer.t, node)
    return {"d": d, "node": node, "charts": dashboard.chart_data(viewer.t, d), "pct": pct,
            "level": level_name(node.level), "refresh_seconds": REFRESH_SECONDS}


@page("/console/dashboard", template="dashboard.html", nav="看板", order=30,
      summary="Console: a node's figures, trends, categories, ranking and cards")
async def dashboard_page(viewer: Viewer, request: web.Request) -> dict:
    return {**await _values(viewer, request), "options": await _options(viewer)}


@page("/console/dashboard/figures", template="_dashboard_figures.html",
      summary="Console: the dashboard's figures block (htmx refresh)")
async def dashboard_figures(viewer: Viewer, request: web.Request) -> dict:
    return await _values(viewer, request)
