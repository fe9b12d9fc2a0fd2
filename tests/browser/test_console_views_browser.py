"""The console's map, dashboard and live list in a real browser (chromium through Playwright, the
session's one browser from conftest), on the demo street, with no tile server anywhere:

- the map draws the scope's grid boundaries and case points (SVG paths in the DOM) on a blank
  background; a grid shows its notice card; a point opens its case, whose page has a small map;
- a community leader's map holds only that community's grids, and the endpoints refuse the rest;
- the dashboard shows the numbers /stats gives in the street's group;
- a case pressed in the group chat changes on the open case list and dashboard, without a reload.
"""

from __future__ import annotations

import re

import pytest

from bot.console import maps
from workflows.routines.reports import pct

from ..support import MovingClock
from ..test_console import Site

pytestmark = pytest.mark.demo

NO_TILES = "http://127.0.0.1:9/{z}/{x}/{y}.png"  # nothing listens on port 9: every tile fails


@pytest.fixture
async def site(sessionmaker):
    async with Site(sessionmaker, MovingClock()) as s:
        yield s
    maps.TILES.__init__()


async def signed_in(site: Site, browser, who: str):
    url, _ = await site.link(who)
    page = await (await browser.new_context(locale="zh-CN", viewport={"width": 1280, "height": 860})).new_page()
    await page.goto(url)
    await page.click("#signin")
    await page.wait_for_url("**/console/cases")
    return page


async def test_the_map_draws_without_tiles_and_a_point_opens_its_case(site: Site, browser):
    maps.TILES.url = NO_TILES
    mine = await site.report("CY-01", latitude=30.287, longitude=120.102, address="翠苑一区 3 幢")
    await site.report("CY-03", latitude=30.296, longitude=120.137)
    await site.report("WX-01", latitude=30.275, longitude=120.105)  # the other community's
    base = site.server.base_url
    page = await signed_in(site, browser, "CY-L")
    await page.goto(f"{base}/console/map")
    await page.wait_for_selector("#map[data-ready='1']")
    assert await page.locator("path.grid-boundary").count() == 3  # 翠苑's three grids, not 文新's
    assert await page.locator("path.case-point").count() == 2
    assert await page.locator("img.leaflet-tile-loaded").count() == 0  # no tiles came: a blank background

    # a grid: its notice card and figures beside the map
    await page.locator("path.grid-boundary").first.click()
    await page.wait_for_selector("#grid-card .card[data-grid='CY-01']")
    assert "张伟" in await page.inner_text("#grid-card")
    # the other community's grid card, and its points, by URL: refused / absent
    wx01 = await site.desk.node("WX-01")
    assert (await page.request.get(f"{base}/console/map/grids/{wx01.id}")).status == 404
    points = await (await page.request.get(f"{base}/console/map/cases.geojson?status=all")).json()
    assert {f["properties"]["grid"] for f in points["features"]} == {"翠苑第一网格", "翠苑第三网格"}

    # a point: its case, with the small map drawing the point in its grid
    await page.locator("path.case-point.case-reported").nth(1).click()  # newest first: CY-01's is second
    await page.wait_for_url(f"**/console/cases/{mine.id}")
    assert mine.number in await page.inner_text("#case-number")
    await page.wait_for_selector("#case-map[data-ready='1']")
    assert await page.locator("#case-map path.case-point").count() == 1
    assert await page.locator("#case-map path.grid-boundary").count() == 1


async def test_the_dashboard_shows_what_stats_says(site: Site, browser):
    for grid in ("CY-01", "CY-02", "WX-01"):
        await site.report(grid)
    page = await signed_in(site, browser, "XH-ZX1")
    await page.goto(f"{site.server.base_url}/console/dashboard")
    await page.wait_for_selector("#chart-days")

    await site.desk.send("XH-ZX1", "/stats", group="XH")
    stats = (await site.desk.last("g:XH")).text
    reported, registered, closed = map(int, re.search(r"上报 (\d+) 件，立案 (\d+) 件，结案 (\d+) 件", stats).groups())
    on_time = re.search(r"按期处置率 (\S+)，", stats).group(1)

    async def figure(name: str) -> str:
        return await page.inner_text(f"#dash [data-figure='{name}']")

    assert (reported, registered, closed) == (3, 0, 0)
    assert [await figure(n) for n in ("reported", "registered", "closed")] == [str(reported), str(registered),
                                                                             str(closed)]
    assert await figure("on_time_rate") == on_time == pct(None)
    # the charts are drawn (Chart.js owns the canvases), the ranking lists both communities
    assert await page.evaluate("['chart-days', 'chart-weeks', 'chart-categories', 'chart-ranking']"
                               ".every(id => !!Chart.getChart(document.getElementById(id)))")
    assert "翠苑社区" in await page.inner_text("table.ranking") and "文新社区" in await page.inner_text("table.ranking")


async def test_a_case_changed_in_the_chat_shows_on_the_open_pages_without_reload(site: Site, browser):
    case = await site.report("CY-01")
    page = await signed_in(site, browser, "CY01-L")
    row = page.locator(f"tr[data-number='{case.number}'] td.status-reported")
    assert await row.count() == 1
    await page.evaluate("window.stillHere = true")  # gone if the page were loaded again

    await site.desk.press("CY01-L", "立案", group="CY-01")  # the grid leader, in the group chat
    await page.wait_for_selector(f"tr[data-number='{case.number}'] td.status-registered", timeout=9000)
    new = await site.report("CY-01", text="楼下有人占道摆摊")
    await page.wait_for_selector(f"tr[data-number='{new.number}']", timeout=9000)
    assert await page.evaluate("window.stillHere === true")

    await page.goto(f"{site.server.base_url}/console/dashboard")
    await page.evaluate("window.stillHere = true")
    assert await page.inner_text("#dash [data-figure='registered']") == "1"
    await site.report("CY-01", text="井盖松动")  # the grid leader's dashboard is the grid's
    await page.wait_for_function(
        "document.querySelector(\"#dash [data-figure='reported']\").textContent === '3'", timeout=9000)
    assert await page.evaluate("window.stillHere === true")
