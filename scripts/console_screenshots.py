"""Screenshots of the web console for docs/console.md, taken by Debian's chromium (Playwright).

A throwaway SQLite database gets the demo street (`gridbot demo`) and two weeks of cases made
through the workflow functions the chat calls (reported, dispatched, closed, rated; some left
to run past their deadline so the sweep gives yellow and red cards). Then the console is
served on a free port, the street centre's staff member signs in with a /console link, and
each page is saved to docs/console/<page>.png. No tile server: the map shows its blank
background, as it does offline.

    ./scripts/console-screenshots            # writes docs/console/*.png
"""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import shutil
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "console"
# Thursday 2026-11-26 10:30 in Shanghai: the week so far has three days of work in it
NOW = datetime(2026, 11, 26, 2, 30, tzinfo=UTC)
WHO = "XH-ZX1"  # 西湖街道社会服务管理中心
TEXTS = {
    "环境卫生": ["小区门口垃圾堆了两天没人清运", "绿化带里有大量建筑垃圾"],
    "市政设施": ["路灯不亮了", "人行道井盖松动，踩上去会响", "雨水口堵塞，下雨就积水"],
    "消防安全隐患": ["楼道里堆满杂物，堵住了消防通道", "电动车在楼道里充电"],
    "占道经营/设摊": ["早市摊贩占用人行道", "夜宵摊占道经营到凌晨"],
    "噪音扰民": ["楼上装修晚上十点还在施工", "广场舞音响声音太大"],
    "物业管理": ["电梯经常停运，物业不处理", "单元门门禁坏了"],
    "矛盾纠纷": ["邻里因停车位发生争执"],
}


def _point_in(boundary: dict, rnd: random.Random) -> tuple[float, float]:
    ring = boundary["coordinates"][0]
    lons, lats = [p[0] for p in ring], [p[1] for p in ring]
    return (rnd.uniform(min(lats) + 0.001, max(lats) - 0.001), rnd.uniform(min(lons) + 0.001, max(lons) - 0.001))


async def seed(sessionmaker, clock) -> None:
    """About forty cases over the last two weeks, in every state, through the workflow functions."""
    from workflows import accounts, cases
    from workflows.context import Ctx
    from workflows.models import Account, Category, GroupBinding, Node, Person
    from workflows.routines import deadlines
    from workflows.tree import GRID_LEVELS

    rnd = random.Random(7)
    async with sessionmaker() as s:
        grids = [n for n in (await s.execute(select(Node).order_by(Node.code))).scalars() if n.level in GRID_LEVELS]
        people = {p.code: p.id for p in (await s.execute(select(Person).where(Person.code.is_not(None)))).scalars()}
        cats = {c.name: c.id for c in (await s.execute(select(Category))).scalars()}
    async with sessionmaker() as s, s.begin():  # groups bound and staff linked, as an office has them
        for node in (await s.execute(select(Node))).scalars():
            s.add(GroupBinding(node_id=node.id, channel="terminal", chat_id=f"g:{node.code}", title=f"{node.name}工作群",
                               status="broken" if node.code == "WX-03" else "active", bound_at=clock.now()))
        for code, pid in people.items():
            if code not in ("CY02-W2", WHO):  # one never linked (WHO is linked when asking for the link)
                s.add(Account(channel="terminal", external_id=code, chat_id=f"p:{code}", person_id=pid,
                              created_at=clock.now()))
    async with sessionmaker() as s, s.begin():  # one blocked the bot: delivery's record of it
        await accounts.unreachable(Ctx(session=s, clock=clock), people["WX01-W2"], "terminal", "p:WX01-W2",
                                   "Forbidden: bot was blocked by the user")
    async with sessionmaker() as s, s.begin():
        resident = Person(name="李居民", phone="13912345678", created_at=clock.now())
        s.add(resident)
        await s.flush()
        resident_id = resident.id

    async def do(fn, *args, **kw):
        async with sessionmaker() as s, s.begin():
            return await fn(Ctx(session=s, clock=clock), *args, **kw)

    # every step of every case on one timeline, run in time order with the deadline sweep every
    # hour between them, as `gridbot run` would: reminders, then yellow, then red cards
    steps: list[tuple[datetime, int, object]] = []
    made: dict[int, int] = {}
    start = NOW - timedelta(days=13)
    for i in range(40):
        t0 = start + timedelta(hours=i * 7.8 + rnd.uniform(0, 3))
        grid = rnd.choice(grids)
        cat = rnd.choice(list(TEXTS))
        lat, lon = _point_in(grid.boundary, rnd)
        code = grid.code.replace("-", "")
        leader, worker = people[f"{code}-L"], people[f"{code}-W{rnd.randint(1, 2)}"]
        fate = rnd.random()

        def report(i=i, grid=grid, cat=cat, lat=lat, lon=lon):
            return do(cases.report, reporter_id=resident_id, category_id=cats[cat],
                      description=rnd.choice(TEXTS[cat]), grid_id=grid.id, latitude=lat, longitude=lon,
                      address=f"{grid.name}{rnd.randint(1, 30)}号楼")

        plan = [(t0, report)]
        if fate >= 0.12:  # below: still waiting to be registered
            plan.append((t0 + timedelta(minutes=40), lambda i=i, a=leader, w=worker: do(
                cases.dispatch, a, made[i], assignee_id=w)))
        if fate >= 0.3:  # below: dispatched and never taken
            plan.append((t0 + timedelta(hours=2), lambda i=i, w=worker: do(cases.accept, w, made[i])))
        if fate >= 0.45:  # below: in progress
            done = t0 + timedelta(hours=rnd.uniform(90, 110) if rnd.random() < 0.2 else rnd.uniform(4, 40))
            rating = rnd.choice(["satisfied", "satisfied", "satisfied", "basic", "unsatisfied"])
            plan += [(done, lambda i=i, w=worker: do(cases.finish, w, made[i], "已到现场处理完毕")),
                     (done + timedelta(hours=1), lambda i=i, a=leader: do(cases.verify, a, made[i], passed=True)),
                     (done + timedelta(hours=3), lambda i=i, r=rating: do(cases.rate, resident_id, made[i], r))]
        steps += [(at, i, fn) for at, fn in plan if at <= NOW]
    steps.sort(key=lambda s: (s[0], s[1]))
    sweep_at = start
    for at, i, fn in steps:
        while sweep_at < at:
            clock.set(sweep_at)
            await do(deadlines.sweep)
            sweep_at += timedelta(hours=1)
        clock.set(at)
        out = await fn()
        if i not in made:
            made[i] = out.id
    clock.set(NOW)
    await do(deadlines.sweep)


PAGES = [("cases", "/console/cases"), ("map", "/console/map"), ("dashboard", "/console/dashboard"),
         ("people", "/console/people")]


async def main(out: Path, chromium: str) -> None:
    from playwright.async_api import async_playwright

    from bot.console import Console
    from bot.db import make_engine, make_sessionmaker, upgrade
    from bot.web import WebServer
    from handlers.office import Office
    from workflows import deadlines
    from workflows.clock import FixedClock
    from workflows.importer import load_demo
    from workflows.models import Case, Person

    tmp = Path(tempfile.mkdtemp(prefix="gridbot-shots-"))
    url = f"sqlite+aiosqlite:///{tmp / 'shots.db'}"
    upgrade(url)
    engine = make_engine(url)
    sm = make_sessionmaker(engine)
    clock = FixedClock(NOW - timedelta(days=14))
    async with sm() as s, s.begin():
        await load_demo(s, now=clock.now())
    await seed(sm, clock)
    office = Office(sm, clock=clock, channels=frozenset({"terminal"}))
    server = WebServer("127.0.0.1", 0, sm, clock)
    console = Console(office, url="http://127.0.0.1")
    console.routes(server)
    await server.start()
    console.set_url(server.base_url)
    try:
        link = await sign_in_link(office, sm, WHO)
        async with sm() as s:
            case_id = (await s.execute(select(Case.id).where(deadlines.carded(deadlines.YELLOW)).order_by(Case.id))).scalar()
            name = (await s.execute(select(Person.name).where(Person.code == WHO))).scalar_one()
        out.mkdir(parents=True, exist_ok=True)
        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
            page = await browser.new_page(viewport={"width": 1280, "height": 860}, locale="zh-CN")
            await page.goto(link)
            await page.locator("form button, form input[type=submit]").first.click()
            await page.wait_for_url("**/console/**")
            shots = [*PAGES[:1], ("case", f"/console/cases/{case_id}"), *PAGES[1:]]
            for label, path in shots:
                await page.goto(server.base_url + path)
                if label == "map":
                    await page.wait_for_selector("#map[data-ready='1']")
                    first = page.locator("path.grid-boundary").first
                    await first.click(position={"x": 20, "y": 20}, force=True)
                    await page.wait_for_selector("#grid-card .card")
                if label == "case":
                    await page.wait_for_selector("#case-map[data-ready='1']", timeout=5000)
                if label == "dashboard":
                    await page.wait_for_timeout(300)  # Chart.js draws on the next frame
                await page.screenshot(path=str(out / f"{label}.png"), full_page=True)
                print(f"{out / label}.png  ({name}, {path})")
            await browser.close()
    finally:
        await server.stop()
        await engine.dispose()
        shutil.rmtree(tmp, ignore_errors=True)


async def sign_in_link(office, sm, who: str) -> str:
    """The link the bot answers /console with, asked for on the terminal channel like a person would."""
    from handlers.events import Inbound
    from workflows.models import Account, Outbox, Person

    async with sm() as s, s.begin():
        person = (await s.execute(select(Person).where(Person.code == who))).scalar_one()
        s.add(Account(channel="terminal", external_id=who, chat_id=f"p:{who}", person_id=person.id,
                      created_at=office.clock.now()))
    await office.handle(Inbound(channel="terminal", chat_id=f"p:{who}", user_id=who, user_name=who,
                                text="/console", event_id="shots-1"))
    async with sm() as s:  # the answer is in the outbox, as every message the bot writes
        rows = (await s.execute(select(Outbox.payload).where(Outbox.chat_id == f"p:{who}"))).scalars()
        text = "\n".join(p.get("text", "") for p in rows)
    m = re.search(r"http://\S+/console/signin/\w+", text)
    if not m:
        raise SystemExit(f"no sign-in link in the bot's answer: {text!r}")
    return m.group(0)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    args = ap.parse_args()
    asyncio.run(main(args.out, args.chromium))
