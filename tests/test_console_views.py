"""The console's map, dashboard and people pages over real HTTP (no browser): what each person's
GeoJSON holds, the grid card refused outside the scope, the dashboard's numbers equal to /stats,
bad filters answered plainly. The browser scenarios are in tests/browser/test_console_views_browser.py."""

from __future__ import annotations

import re
from dataclasses import asdict

import pytest

from bot.console import maps
from workflows import geo
from workflows.i18n import T
from workflows.models import Node
from workflows.routines.reports import pct, week_so_far

from .test_console import Site

pytestmark = pytest.mark.demo


@pytest.fixture
async def site(sessionmaker):
    from .support import MovingClock

    async with Site(sessionmaker, MovingClock()) as s:
        yield s
    maps.TILES.__init__()


async def _json(site: Site, path: str, http=None) -> tuple[int, dict | str]:
    async with (http or site.http).get(path, allow_redirects=False) as r:
        return r.status, (await r.json() if r.content_type == "application/json" else await r.text())


async def test_each_community_gets_its_own_grids_and_points(site: Site):
    cy = await site.report("CY-01", latitude=30.29, longitude=120.105)
    wx = await site.report("WX-01", latitude=30.275, longitude=120.105)
    await site.sign_in("CY-L")
    status, grids = await _json(site, "/console/map/grids.geojson")
    assert status == 200 and {f["properties"]["code"] for f in grids["features"]} == {"CY-01", "CY-02", "CY-03"}
    status, points = await _json(site, "/console/map/cases.geojson")
    assert status == 200 and [f["id"] for f in points["features"]] == [cy.id]
    # another community's grid card and case point: not there, whatever the id
    async with site.http.get(f"/console/map/grids/{(await site.desk.node('WX-01')).id}") as r:
        assert r.status == 404 and "文新" not in await r.text()
    status, _ = await _json(site, f"/console/map/cases/{wx.id}.geojson")
    assert status == 404
    async with site.http.get(f"/console/map/grids/{(await site.desk.node('CY-01')).id}") as r:
        html = await r.text()
        assert r.status == 200 and "张伟" in html and "13800000007" in html  # a community leader dispatches there

    async with site.client() as street:
        await site.sign_in("XH-ZX1", street)
        status, points = await _json(site, "/console/map/cases.geojson", street)
        assert {f["id"] for f in points["features"]} == {cy.id, wx.id}


async def test_the_tiles_datum_is_what_the_layers_are_drawn_in(site: Site):
    case = await site.report("CY-01", latitude=30.29, longitude=120.105)
    maps.TILES.crs, maps.TILES.url = "gcj02", "http://127.0.0.1:9/{z}/{x}/{y}.png"
    await site.sign_in("CY01-L")
    _, points = await _json(site, "/console/map/cases.geojson")
    lon, lat = points["features"][0]["geometry"]["coordinates"]
    assert (lat, lon) == pytest.approx(geo.from_wgs84(30.29, 120.105, "gcj02"))
    _, one = await _json(site, f"/console/map/cases/{case.id}.geojson")
    assert one["tiles"]["crs"] == "gcj02" and one["tiles"]["tile_url"].startswith("http://127.0.0.1:9/")
    assert [f["properties"]["kind"] for f in one["features"]] == ["grid", "case"]
    async with site.http.get("/console/map") as r:
        assert r.status == 200 and '"crs": "gcj02"' in await r.text()


async def test_bad_filters_get_a_clear_answer(site: Site):
    await site.sign_in("CY-L")
    for query, words in (("status=nope", "未知的事件状态"), ("card=green", "未知的督办牌"), ("days=x", "须为数字"),
                         ("days=0", "1 到 3660")):
        async with site.http.get(f"/console/map/cases.geojson?{query}") as r:
            assert r.status == 400 and words in await r.text(), query
    async with site.http.get("/console/dashboard?node=abc") as r:
        assert r.status == 404
    async with site.http.get(f"/console/dashboard?node={(await site.desk.node('WX')).id}") as r:
        assert r.status == 404  # another community's dashboard


async def test_the_dashboard_shows_the_numbers_of_stats(site: Site):
    for grid in ("CY-01", "CY-02", "WX-01"):
        await site.report(grid)
    await site.sign_in("XH-ZX1")
    async with site.http.get("/console/dashboard") as r:
        html = await r.text()
        assert r.status == 200 and "西湖街道" in html
    async with site.sm() as s:
        xh = (await s.get(Node, (await site.desk.node("XH")).id))
        _s, _e, week, _rows = await week_so_far(site.desk.ctx(s), xh)

    def figure(name: str) -> str:
        return re.search(rf'data-figure="{name}">([^<]*)<', html).group(1)

    assert figure("reported") == str(week.reported) == "3" and figure("today-reported") == "3"
    assert figure("on_time_rate") == pct(week.on_time_rate) and figure("closed") == str(week.closed)
    assert asdict(week)["yellow"] == int(figure("yellow"))
    # the community's row in the ranking with the chat's score (stats.ranked), and the fragment the page polls
    assert "翠苑社区" in html and "文新社区" in html
    assert re.findall(r'data-figure="score">([^<]*)<', html) == ["100.0", "100.0"]  # reports only: rates full
    async with site.http.get(f"/console/dashboard/figures?node={(await site.desk.node('CY')).id}",
                             headers={"HX-Request": "true"}) as r:
        part = await r.text()
        assert r.status == 200 and "<html" not in part and 'data-figure="reported">2<' in part


async def test_the_people_page_shows_who_cannot_be_reached(site: Site):
    await site.sign_in("CY-L")
    async with site.http.get("/console/people") as r:
        html = await r.text()
    assert r.status == 200 and "翠苑第一网格" in html and "文新第一网格" not in html
    assert 'data-person="CY01-W1"' in html and "A/B" in html
    assert 'data-problem="no-account"' not in html  # the desk linked everyone on the test channel


async def test_the_pages_speak_english_when_asked(site: Site):
    await site.report("CY-01", latitude=30.29, longitude=120.105)
    await site.sign_in("CY-L")
    csrf = await site.csrf("/console/dashboard")
    async with site.http.post("/console/language", data={"csrf": csrf, "language": "en", "back": "/console/map"}) as r:
        assert r.status == 200 and "Click a grid for its notice card" in await r.text()
    async with site.http.get("/console/dashboard") as r:
        html = await r.text()
        assert "New today" in html and "Ranking below, this week" in html and "今日新增" not in html
    async with site.http.get("/console/people") as r:
        html = await r.text()
        assert "Grid worker" in html and "A/B partner" in html and "网格员" not in html
    _, points = await _json(site, "/console/map/cases.geojson")
    props = points["features"][0]["properties"]
    assert props["category"] == "Environment and sanitation" and props["status_label"] == T("en")("待立案") != "待立案"


async def test_the_people_page_is_paged_by_nodes(site: Site, monkeypatch):
    from bot.console import people

    monkeypatch.setattr(people, "PAGE", 4)
    await site.sign_in("XH-ZX1")  # the street: 9 nodes
    async with site.http.get("/console/people?page=3") as r:
        html = await r.text()
    assert r.status == 200 and "第 3 / 3 页" in html and html.count('class="node level-') == 1
    async with site.http.get("/console/people?page=x") as r:
        html = await r.text()
    assert r.status == 200 and "第 1 / 3 页" in html and 'data-node="XH"' in html and 'rel="next"' in html
