"""The web console over real HTTP (aiohttp client, no browser): sign-in links, sessions and their
cookie, CSRF and Origin, scope (another community's case answers 404), the case list's filters
and export, and an action that writes the same events and cards as the chat's button.

The browser scenario is tests/browser/test_console_browser.py."""

from __future__ import annotations

import io
import re
from datetime import timedelta

import aiohttp
import openpyxl
import pytest
from sqlalchemy import select
from yarl import URL

from bot.console import Console
from bot.web import WebServer
from handlers import console as console_command
from workflows import cases, console_access
from workflows.code_models import CodeEvent
from workflows.console_models import ConsoleSession
from workflows.models import Case, CaseDeadline, CaseEvent, Category, Node, Person

from .support import Desk, MovingClock

pytestmark = pytest.mark.demo

LEADER = "CY01-L"  # 张伟, CY-01 网格长
COMMUNITY = "CY-L"  # 翠苑社区
OTHER_LEADER = "WX01-L"  # 文新社区's first grid
LINK = re.compile(r"(http://\S+/console/signin/(\w+))")


class Site:
    """The one web server with the console on it, a desk for the chat side, one browser-like client."""

    def __init__(self, sm, clock) -> None:
        self.sm, self.clock = sm, clock
        self.desk = Desk(sm, clock)
        self.server = WebServer("127.0.0.1", 0, sm, clock)
        self.console = Console(self.desk.office, url="http://127.0.0.1")
        self.console.routes(self.server)

    async def __aenter__(self) -> Site:
        await self.desk.setup_chats()
        await self.server.start()
        self.console.set_url(self.server.base_url)
        self.http = self.client()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.http.close()
        await self.server.stop()
        console_command.LINK.url = None

    def client(self) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(self.server.base_url, cookie_jar=aiohttp.CookieJar(unsafe=True),
                                     headers={"Origin": self.server.base_url})

    async def link(self, who: str) -> tuple[str, str]:
        await self.desk.send(who, "/console")
        m = LINK.search(await self.desk.last_text(who))
        assert m, await self.desk.last_text(who)
        return m.group(1), m.group(2)

    async def sign_in(self, who: str, http: aiohttp.ClientSession | None = None) -> aiohttp.ClientSession:
        http = http or self.http
        url, _token = await self.link(who)
        async with http.get(url) as r:
            assert r.status == 200 and "登录" in await r.text()
        async with http.post(url, allow_redirects=False) as r:
            assert r.status == 303, await r.text()
        return http

    async def csrf(self, path: str, http: aiohttp.ClientSession | None = None) -> str:
        async with (http or self.http).get(path) as r:
            html = await r.text()
        return re.search(r'name="csrf" value="([^"]+)"', html).group(1)

    async def report(self, grid: str, text: str = "小区门口路灯坏了三天", **kw) -> Case:
        async with self.sm() as s, s.begin():
            ctx = self.desk.ctx(s)
            node = (await s.execute(select(Node).where(Node.code == grid))).scalar_one()
            cat = (await s.execute(select(Category).order_by(Category.id).limit(1))).scalar_one()
            return await cases.report(ctx, reporter_id=None, category_id=cat.id, description=text, grid_id=node.id,
                                      **kw)


@pytest.fixture
async def site(sessionmaker):
    async with Site(sessionmaker, MovingClock()) as s:
        yield s


# ---------------------------------------------------------------- signing in


async def test_link_signs_in_once_and_sets_a_safe_cookie(site: Site):
    url, token = await site.link(LEADER)
    assert "10 分钟内有效" in await site.desk.last_text(LEADER) and len(token) == 32
    # a link preview (GET) does not use the link
    async with site.http.get(url) as r:
        assert r.status == 200 and 'id="signin"' in await r.text()
    async with site.http.post(url, allow_redirects=False) as r:
        assert r.status == 303 and r.headers["Location"] == "/console"
        cookie = r.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/console" in cookie
    assert "Secure" not in cookie  # http: the browser would drop a Secure cookie
    async with site.http.get("/console/cases") as r:
        assert r.status == 200 and "张伟" in await r.text()
    # the session table holds a hash, never the cookie's id
    raw = site.http.cookie_jar.filter_cookies(URL(site.server.base_url + "/console"))["gridbot_console"].value
    async with site.sm() as s:
        [row] = (await s.execute(select(ConsoleSession))).scalars().all()
    assert row.id_hash == console_access.hash_id(raw) and raw not in row.id_hash

    # the same link again, from another browser: refused
    async with site.client() as other:
        async with other.post(url, allow_redirects=False) as r:
            assert r.status == 403 and "这个码已经用过了" in await r.text()
        async with other.get("/console/cases", allow_redirects=False) as r:
            assert r.status == 303 and r.headers["Location"] == "/console"


async def test_expired_link_wrong_links_lock_out_and_logout(site: Site):
    url, _ = await site.link(LEADER)
    site.clock.advance(11 * 60)
    async with site.http.post(url, allow_redirects=False) as r:
        assert r.status == 403 and "已过期" in await r.text()
    base = site.server.base_url
    for n in range(4):
        async with site.http.post(f"{base}/console/signin/{'X' * 31}{n}", allow_redirects=False) as r:
            assert r.status == 403 and "码无效" in await r.text()
    # five wrong tries (the expired link counts too) lock this address out, even for a good link
    good, _ = await site.link(LEADER)
    async with site.http.post(good, allow_redirects=False) as r:
        assert r.status == 429 and "错误次数太多" in await r.text()
    assert await site.desk.count(CodeEvent, CodeEvent.channel == "console", CodeEvent.event == "failed") >= 5
    site.clock.advance(16 * 60)
    await site.sign_in(LEADER)
    csrf = await site.csrf("/console/cases")
    async with site.http.post("/console/logout", data={"csrf": csrf}, allow_redirects=False) as r:
        assert r.status == 303
    async with site.http.get("/console/cases", allow_redirects=False) as r:
        assert r.status == 303  # signed out
    async with site.sm() as s:
        assert all(x.ended_at is not None for x in (await s.execute(select(ConsoleSession))).scalars())


async def test_session_lifetime(site: Site):
    await site.sign_in(LEADER)
    site.clock.advance(12 * 3600 + 1)
    async with site.http.get("/console/cases", allow_redirects=False) as r:
        assert r.status == 303


async def test_residents_get_no_link(site: Site):
    await site.desk.send("王大妈", "/console")
    assert "/console/signin/" not in await site.desk.last_text("王大妈")


async def test_console_off_says_so(site: Site):
    console_command.LINK.url = None  # what CONSOLE_ENABLED=false leaves
    await site.desk.send(LEADER, "/console")
    assert "网页控制台没有开启" in await site.desk.last_text(LEADER)


# ---------------------------------------------------------------- scope, CSRF, Origin


async def test_scope_another_communitys_case_is_not_found(site: Site):
    mine = await site.report("CY-01")
    theirs = await site.report("WX-01", "文新路口井盖缺失")
    await site.sign_in(LEADER)
    async with site.http.get("/console/cases") as r:
        html = await r.text()
    assert mine.number in html and theirs.number not in html
    async with site.http.get(f"/console/cases/{mine.id}") as r:
        assert r.status == 200 and mine.number in await r.text()
    for path in (f"/console/cases/{theirs.id}", "/console/cases/999999", "/console/cases/abc"):
        async with site.http.get(path) as r:
            assert r.status == 404, path
            assert theirs.number not in await r.text()
    # the community leader sees every grid of 翠苑社区, not 文新社区's
    async with site.client() as c:
        await site.sign_in(COMMUNITY, c)
        async with c.get("/console/cases") as r:
            html = await r.text()
        assert mine.number in html and theirs.number not in html
        async with c.get("/console/cases", params={"node": str((await site.desk.node("WX")).id)}) as r:
            assert r.status == 404  # filtering by a node outside the scope is refused too


async def test_post_without_csrf_or_from_another_origin_is_refused(site: Site):
    case = await site.report("CY-01")
    await site.sign_in(LEADER)
    csrf = await site.csrf(f"/console/cases/{case.id}")
    form = {"action": "case.register", "status": "reported", "level": str(case.grid_id)}
    async with site.http.post(f"/console/cases/{case.id}/act", data=form, allow_redirects=False) as r:
        assert r.status == 403
    async with site.http.post(f"/console/cases/{case.id}/act", data={**form, "csrf": "wrong"},
                              allow_redirects=False) as r:
        assert r.status == 403
    async with site.http.post(f"/console/cases/{case.id}/act", data={**form, "csrf": csrf},
                              headers={"Origin": "https://evil.example"}, allow_redirects=False) as r:
        assert r.status == 403
    assert (await site.desk.case(case.number)).status == "reported"
    # the htmx header works like the form field
    async with site.http.post(f"/console/cases/{case.id}/act", data=form, headers={"X-CSRF-Token": csrf},
                              allow_redirects=False) as r:
        assert r.status == 303
    assert (await site.desk.case(case.number)).status == "registered"


# ---------------------------------------------------------------- actions through the workflow


async def test_dispatch_from_the_console_is_the_chats_dispatch(site: Site):
    case = await site.report("CY-01")
    await site.sign_in(LEADER)
    async with site.http.get(f"/console/cases/{case.id}") as r:
        html = await r.text()
    assert 'data-action="case.register"' in html and 'data-action="case.assign"' in html
    assert 'data-action="case.verify_pass"' not in html  # only what the card offers now
    worker = await site.desk.person("CY01-W1")
    csrf = re.search(r'name="csrf" value="([^"]+)"', html).group(1)
    form = {"csrf": csrf, "action": "case.assign", "status": "reported", "level": str(case.grid_id),
            "to": f"person:{worker.id}"}
    async with site.http.post(f"/console/cases/{case.id}/act", data=form) as r:
        assert r.status == 200 and "已派遣，待接收" in await r.text()
    case = await site.desk.case(case.number)
    assert case.status == "dispatched" and case.assignee_id == worker.id
    async with site.sm() as s:
        ev = (await s.execute(select(CaseEvent).where(CaseEvent.case_id == case.id, CaseEvent.action == "dispatched")
                              )).scalar_one()
    leader = await site.desk.person(LEADER)
    assert ev.actor_id == leader.id and ev.channel == "console"
    # the group's card was re-rendered and the worker got the task, as from the chat
    card = await site.desk.last("g:CY-01")
    assert case.number in card.text and "已派遣" in card.text and card.card_key == f"case:{case.id}:{case.grid_id}"
    assert case.number in await site.desk.last_text("CY01-W1")
    # the same form again: the page is stale now
    async with site.http.post(f"/console/cases/{case.id}/act", data=form) as r:
        assert r.status == 409 and "已有新进展" in await r.text()
    # a worker may see the case and remark on it, but not dispatch it
    async with site.client() as c:
        await site.sign_in("CY01-W2", c)
        async with c.get(f"/console/cases/{case.id}") as r:
            html = await r.text()
        assert r.status == 200 and re.findall(r'data-action="([^"]+)"', html) == ["case.comment"]


async def test_dispatch_to_someone_not_offered_is_refused(site: Site):
    case = await site.report("CY-01")
    await site.sign_in(LEADER)
    csrf = await site.csrf(f"/console/cases/{case.id}")
    stranger = await site.desk.person("WX01-W1")
    form = {"csrf": csrf, "action": "case.assign", "status": "reported", "level": str(case.grid_id),
            "to": f"person:{stranger.id}"}
    async with site.http.post(f"/console/cases/{case.id}/act", data=form) as r:
        assert r.status == 400
    assert (await site.desk.case(case.number)).status == "reported"


async def test_escalate_then_the_community_sends_it_down(site: Site):
    case = await site.report("CY-01")
    await site.sign_in(LEADER)
    csrf = await site.csrf(f"/console/cases/{case.id}")
    async with site.http.post(f"/console/cases/{case.id}/act", data={
            "csrf": csrf, "action": "case.escalate", "status": "reported", "level": str(case.grid_id),
            "reason": "需要多部门协调"}) as r:
        assert r.status == 200
    case = await site.desk.case(case.number)
    community = await site.desk.node("CY")
    assert case.level_node_id == community.id and case.status == "registered"
    async with site.client() as c:
        await site.sign_in(COMMUNITY, c)
        async with c.get(f"/console/cases/{case.id}") as r:
            html = await r.text()
        assert 'data-action="case.send_down"' in html
        csrf = re.search(r'name="csrf" value="([^"]+)"', html).group(1)
        grid2 = await site.desk.node("CY-02")
        async with c.post(f"/console/cases/{case.id}/act", data={
                "csrf": csrf, "action": "case.send_down", "status": "registered", "level": str(community.id),
                "node": str(grid2.id)}) as r:
            assert r.status == 200
    assert (await site.desk.case(case.number)).level_node_id == grid2.id


# ---------------------------------------------------------------- the list


async def test_filters_sort_paging_and_export(site: Site):
    a = await site.report("CY-01", "路灯坏了")
    b = await site.report("CY-02", "井盖缺失", address="翠苑一区3幢")
    await site.report("WX-01", "文新的事")
    async with site.sm() as s, s.begin():
        await s.merge(CaseDeadline(case_id=b.id, stage=4))  # a red card
    await site.sign_in(COMMUNITY)

    async def numbers(**params) -> list[str]:
        async with site.http.get("/console/cases", params=params) as r:
            assert r.status == 200
            return re.findall(r'data-number="([^"]+)"', await r.text())

    assert set(await numbers()) == {a.number, b.number}
    assert await numbers(q="井盖") == [b.number]
    assert await numbers(q="翠苑一区") == [b.number]
    assert await numbers(q=a.number.lower()) == [a.number]
    assert await numbers(card="red") == [b.number]
    assert await numbers(node=str((await site.desk.node("CY-01")).id)) == [a.number]
    assert await numbers(status="closed") == []
    assert set(await numbers(status="reported")) == {a.number, b.number}
    assert await numbers(sort="number", dir="asc") == sorted([a.number, b.number])
    assert await numbers(sort="number", dir="desc") == sorted([a.number, b.number], reverse=True)
    assert await numbers(first="2000-01-01", last="2000-01-02") == []
    async with site.http.get("/console/cases", params={"status": "nonsense"}) as r:
        assert r.status == 400
    # the htmx refresh gets the table only
    async with site.http.get("/console/cases", headers={"HX-Request": "true"}) as r:
        html = await r.text()
    assert html.startswith('<div id="case-table"') and "<html" not in html

    async with site.http.get("/console/cases.xlsx", params={"q": "井盖"}) as r:
        assert r.status == 200 and "spreadsheetml" in r.headers["Content-Type"]
        data = await r.read()
    ws = openpyxl.load_workbook(io.BytesIO(data)).active
    numbers_in_file = [row[0] for row in ws.iter_rows(min_row=3, values_only=True)]
    assert numbers_in_file == [b.number]


async def test_english_switch(site: Site):
    await site.sign_in(LEADER)
    csrf = await site.csrf("/console/cases")
    async with site.http.post("/console/language", data={"csrf": csrf, "language": "en", "back": "/console/cases"}) as r:
        html = await r.text()
    assert r.status == 200 and "Cases" in html and "Sign out" in html and "退出登录" not in html


async def test_link_lifetime_is_the_setting(site: Site):
    site.console.link_lifetime = timedelta(minutes=3)
    console_command.LINK.lifetime = timedelta(minutes=3)
    url, _ = await site.link(LEADER)
    assert "3 分钟内有效" in await site.desk.last_text(LEADER)
    site.clock.advance(4 * 60)
    async with site.http.post(url, allow_redirects=False) as r:
        assert r.status == 403
    console_command.LINK.lifetime = timedelta(minutes=10)


async def test_person_language_is_the_default(site: Site):
    case = await site.report("CY-01")
    async with site.sm() as s, s.begin():
        p = (await s.execute(select(Person).where(Person.code == LEADER))).scalar_one()
        p.language = "en"
    await site.sign_in(LEADER)
    async with site.http.get(f"/console/cases/{case.id}") as r:
        html = await r.text()
    assert "Sign out" in html
    csrf = re.search(r'name="csrf" value="([^"]+)"', html).group(1)
    async with site.http.post(f"/console/cases/{case.id}/act", data={
            "csrf": csrf, "action": "case.register", "status": "reported", "level": str(case.grid_id)}) as r:
        assert r.status == 200
    # the group's card stays in the office's language whoever acted, in whatever language
    assert "已立案" in (await site.desk.last("g:CY-01")).text


# ---------------------------------------------------------------- media, switching off, own address


async def test_media_of_a_case_in_scope_only(site: Site, tmp_path):
    from workflows import media
    from workflows.media_store import DirectoryStore, use_store

    use_store(DirectoryStore(tmp_path / "media"))
    try:
        mine = await site.report("CY-01")
        theirs = await site.report("WX-01", "文新路口井盖缺失")
        photo = b"\x89PNG\r\n\x1a\n" + b"0" * 100
        async with site.sm() as s, s.begin():
            ctx = site.desk.ctx(s)
            a = await media.store_bytes(ctx, photo, "photo", "a.png", "image/png", case_id=mine.id)
            b = await media.store_bytes(ctx, photo + b"1", "photo", "b.png", "image/png", case_id=theirs.id)
        await site.sign_in(LEADER)
        async with site.http.get(f"/console/cases/{mine.id}") as r:
            assert f'src="/console/media/{a["item"]}"' in await r.text()
        async with site.http.get(f"/console/media/{a['item']}") as r:
            assert r.status == 200 and r.headers["Content-Type"] == "image/png" and await r.read() == photo
        for item in (b["item"], 999999, "x"):
            async with site.http.get(f"/console/media/{item}") as r:
                assert r.status == 404
    finally:
        use_store(None)


async def test_mount_follows_the_settings(sessionmaker):
    from bot import console
    from bot.settings import Settings

    desk = Desk(sessionmaker, MovingClock())
    off = WebServer("127.0.0.1", 0, sessionmaker)
    assert console.mount(Settings(_env_file=None, console_enabled=False), desk.office, off) is None
    assert console_command.LINK.url is None
    assert not [r for r in off.app.router.routes() if r.resource.canonical.startswith("/console")]

    main = WebServer("127.0.0.1", 0, sessionmaker)
    own = console.mount(Settings(_env_file=None, console_port=0, console_url="https://console.example"),
                        desk.office, main)
    try:
        assert own is not None and console_command.LINK.url == "https://console.example"
        assert not [r for r in main.app.router.routes() if r.resource.canonical.startswith("/console")]
        await own.start()
        async with aiohttp.ClientSession(own.base_url) as http, http.get("/console") as r:
            assert r.status == 200 and 'id="signin"' not in await r.text()
        # behind TLS (CONSOLE_URL https) the session cookie is Secure; the Origin is the public one
        leader = await desk.person(LEADER)
        async with sessionmaker() as s, s.begin():
            token = await console_access.issue_link_token(desk.ctx(s), leader.id, timedelta(minutes=10))
        async with aiohttp.ClientSession(own.base_url) as http:
            async with http.post(f"/console/signin/{token}", headers={"Origin": "https://console.example"},
                                 allow_redirects=False) as r:
                assert r.status == 303 and "Secure" in r.headers["Set-Cookie"]
    finally:
        await own.stop()
        console_command.LINK.url = None


async def test_lock_out_counts_the_address_the_proxy_saw(site: Site):
    base = site.server.base_url
    for n in range(5):
        async with site.http.post(f"{base}/console/signin/{'X' * 31}{n}", headers={"X-Forwarded-For": "10.0.0.1"},
                                  allow_redirects=False) as r:
            assert r.status == 403
    url, _ = await site.link(LEADER)
    async with site.http.post(url, headers={"X-Forwarded-For": "10.0.0.1"}, allow_redirects=False) as r:
        assert r.status == 429
    async with site.http.post(url, headers={"X-Forwarded-For": "10.0.0.2"}, allow_redirects=False) as r:
        assert r.status == 303  # another browser behind the same proxy is not locked out


async def test_urge_from_above_and_remarks(site: Site):
    case = await site.report("CY-01")
    worker = await site.desk.person("CY01-W1")
    async with site.sm() as s, s.begin():
        leader = (await s.execute(select(Person).where(Person.code == LEADER))).scalar_one()
        await cases.dispatch(site.desk.ctx(s), leader.id, case.id, assignee_id=worker.id)
    await site.sign_in(COMMUNITY)  # 翠苑社区, the level above CY-01
    async with site.http.get(f"/console/cases/{case.id}") as r:
        html = await r.text()
    assert 'data-action="case.urge"' in html and 'data-action="case.comment"' in html
    assert 'data-action="case.assign"' not in html  # the grid holds it: not the community's to dispatch
    csrf = re.search(r'name="csrf" value="([^"]+)"', html).group(1)
    base = {"csrf": csrf, "status": "dispatched", "level": str(case.grid_id)}
    async with site.http.post(f"/console/cases/{case.id}/act", data={**base, "action": "case.urge",
                                                                     "reason": "请今天内处理"}) as r:
        assert r.status == 200
    assert "【督办】翠苑社区 督办事件" in await site.desk.last_text("CY01-W1")
    group = [m.text for m in await site.desk.messages("g:CY-01")]
    assert "上级督办" in group[-2]  # the card shows it, and a new message says it where it is seen
    assert "【督办】翠苑社区 督办事件" in group[-1] and f"/case {case.number}" in group[-1]
    async with site.http.post(f"/console/cases/{case.id}/act", data={**base, "action": "case.comment",
                                                                     "reason": ""}) as r:
        assert r.status == 400  # an empty remark: refused, nothing written
    async with site.http.post(f"/console/cases/{case.id}/act", data={**base, "action": "case.comment",
                                                                     "reason": "注意夜间安全"}) as r:
        assert r.status == 200 and "注意夜间安全" in await r.text()
    async with site.sm() as s:
        actions = [e.action for e in (await s.execute(
            select(CaseEvent).where(CaseEvent.case_id == case.id).order_by(CaseEvent.id))).scalars()]
    assert actions[-2:] == ["urged", "commented"]
    # the grid's own leader may remark but not urge (督办 comes from above)
    async with site.client() as c:
        await site.sign_in(LEADER, c)
        async with c.get(f"/console/cases/{case.id}") as r:
            html = await r.text()
        assert 'data-action="case.comment"' in html and 'data-action="case.urge"' not in html
