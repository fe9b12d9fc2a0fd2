"""The console's map (地理信息系统): grid boundaries and case points drawn by Leaflet over the
configured tile provider, a grid's notice card and figures on click.

Points and boundaries are stored in WGS-84; the GeoJSON endpoints convert them to the datum of
the tiles (CONSOLE_TILE_CRS: Amap/Tencent gcj02, Baidu bd09, OSM and Tianditu wgs84), so they
sit on the tiles' streets. With no tile URL, or a tile server that does not answer, the layers
are still drawn, on a blank background.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from aiohttp import web
from sqlalchemy import select

from workflows import geo, map_layers
from workflows.errors import Invalid
from workflows.i18n import category_name
from workflows.models import CaseStatus, Category, Node
from workflows.routines.reports import pct

from .core import Viewer, page

STATUSES = ("open", "closed", "all", *(str(s) for s in CaseStatus))


@dataclass
class Tiles:
    """The tile provider, from the settings at mount (bot.console.mount calls `configure`)."""

    url: str | None = None  # a Leaflet URL template: https://{s}.tile.openstreetmap.org/{z}/{x}/{y}.png
    crs: str = "wgs84"
    attribution: str = ""
    subdomains: str = "abc"


# how often an open page looks for changes (the case list, the dashboard, the map's points): a case
# changed in chat shows within this many seconds
REFRESH_SECONDS = 5


TILES = Tiles()


def configure(settings) -> None:
    TILES.url = settings.console_tile_url or None
    TILES.crs = geo.check_crs(settings.console_tile_crs)
    TILES.attribution = settings.console_tile_attribution or ""
    TILES.subdomains = settings.console_tile_subdomains or "abc"


def map_config(**extra) -> dict:
    """What the page's script needs (map.js reads it from a JSON block)."""
    return {"tile_url": TILES.url, "crs": TILES.crs, "attribution": TILES.attribution,
            "subdomains": TILES.subdomains, "refresh_ms": REFRESH_SECONDS * 1000,
            "case_url": "/console/cases/{id}", "card_url": "/console/map/grids/{id}", **extra}


def _filters(q, now) -> map_layers.CaseFilter:
    f = map_layers.CaseFilter()
    f.status = q.get("status") or "open"
    if f.status not in STATUSES:
        raise Invalid("未知的事件状态：{status}", status=f.status[:20])
    f.overdue = q.get("overdue") == "1"
    card = q.get("card") or None
    if card not in (None, "yellow", "red"):
        raise Invalid("未知的督办牌：{card}", card=card[:20])
    f.card = card
    try:
        f.category_id = int(q["category"]) if q.get("category") else None
        days = int(q["days"]) if q.get("days") else None
    except ValueError:
        raise Invalid("筛选条件须为数字。") from None
    if days is not None and not 1 <= days <= 3660:
        raise Invalid("天数须在 1 到 3660 之间。")
    f.since = now - timedelta(days=days) if days else None
    return f


@page("/console/map", template="map.html", nav="地图", order=20, summary="Console: grids and cases on a map")
async def map_page(viewer: Viewer, request: web.Request) -> dict:
    f = _filters(request.query, viewer.ctx.now())
    cats = (await viewer.ctx.session.execute(select(Category).order_by(Category.sort, Category.code))).scalars()
    return {"config": map_config(), "filters": f, "query": dict(request.query),
            "categories": [(c.id, category_name(viewer.t, c)) for c in cats]}


@page("/console/map/grids.geojson", summary="Console map: grid boundaries in scope (GeoJSON, tile datum)")
async def grids_geojson(viewer: Viewer, request: web.Request) -> web.StreamResponse:
    return _json(await map_layers.grid_layer(viewer.ctx, viewer.paths, TILES.crs))


@page("/console/map/cases.geojson", summary="Console map: located cases in scope (GeoJSON, tile datum)")
async def cases_geojson(viewer: Viewer, request: web.Request) -> web.StreamResponse:
    f = _filters(request.query, viewer.ctx.now())
    return _json(await map_layers.case_layer(viewer.ctx, viewer.paths, TILES.crs, f, viewer.t))


@page("/console/map/grids/{id}", template="_grid_card.html", summary="Console map: a grid's notice card and figures")
async def grid_card(viewer: Viewer, request: web.Request) -> dict:
    try:
        grid_id = int(request.match_info["id"])
    except ValueError:
        grid_id = 0
    card = await map_layers.grid_card(viewer.ctx, viewer.t, viewer.person.id, viewer.paths, grid_id)
    return {"card": card, "pct": pct}


def _json(body: dict) -> web.Response:
    resp = web.json_response(body)
    resp.headers["Cache-Control"] = "no-store"
    resp.headers["X-Content-Type-Options"] = "nosniff"
    return resp


@page("/console/map/cases/{id}.geojson", summary="Console map: one case's point and its grid (GeoJSON, tile datum)")
async def case_geojson(viewer: Viewer, request: web.Request) -> web.StreamResponse:
    case = await viewer.case(request.match_info["id"])  # 404 outside the scope
    features = []
    grid = await viewer.ctx.session.get(Node, case.grid_id)
    if grid is not None and grid.boundary:
        features.append({"type": "Feature", "id": grid.id, "geometry": geo.geometry_from_wgs84(grid.boundary, TILES.crs),
                         "properties": {"kind": "grid", "name": grid.name}})
    if case.latitude is not None and case.longitude is not None:
        y, x = geo.from_wgs84(case.latitude, case.longitude, TILES.crs)
        features.append({"type": "Feature", "id": case.id, "geometry": {"type": "Point", "coordinates": [x, y]},
                         "properties": {"kind": "case", "number": case.number, "status": case.status}})
    # the tile settings ride along (a foreign member), so the case page needs no values of its own
    return _json({"type": "FeatureCollection", "features": features, "tiles": map_config()})
