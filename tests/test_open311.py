"""The Open311 GeoReport v2 API over real HTTP: a hotline request becomes a case in its grid's
group, the leader and worker handle it in chat, GET reads it back closed with the office's notes,
the rating comes back through the API, and the key's webhook receiver (a local aiohttp server)
gets every step once, in order, signed. Then the key rules and every kind of bad input."""

from __future__ import annotations

import hashlib
import hmac
import json

import aiohttp
import pytest
from aiohttp import web
from sqlalchemy import select

from bot.delivery import Delivery
from bot.open311 import Open311Api
from bot.web import WebServer
from bot.webhook import WebhookSender
from workflows import api_keys
from workflows.api_models import ApiKey, ApiRequest
from workflows.models import Case, CaseEvent, Outbox, Person

from .support import Desk, MovingClock

pytestmark = pytest.mark.demo

API = "/open311/v2"
INSIDE_CY01 = {"lat": "30.290", "long": "120.105"}  # WGS-84, inside 翠苑第一网格's boundary
LEADER, WORKER = "CY01-L", "CY01-W1"


class Receiver:
    """A hotline platform's webhook endpoint: records each POST; `fail` answers 500 that many times."""

    def __init__(self) -> None:
        self.got: list[tuple[dict, bytes]] = []
        self.fail = 0
        app = web.Application()
        app.router.add_post("/hook", self.hook)
        self.runner = web.AppRunner(app)

    async def hook(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.got.append((dict(request.headers), body))
        if self.fail:
            self.fail -= 1
            return web.Response(status=500)
        return web.Response(text="ok")

    async def start(self) -> str:
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        return f"http://127.0.0.1:{self.runner.addresses[0][1]}/hook"


class Api:
    """The server, a desk for the chat side, a delivery worker for the webhooks, and one HTTP client."""

    def __init__(self, sm, clock) -> None:
        self.sm, self.clock = sm, clock
        self.desk = Desk(sm, clock)
        self.server = WebServer("127.0.0.1", 0, sm, clock)
        Open311Api(self.desk.office).routes(self.server)
        self.sender = WebhookSender(sm)
        self.delivery = Delivery(sm, {"webhook": self.sender}, clock=clock)
        self.receiver = Receiver()

    async def __aenter__(self) -> Api:
        await self.desk.setup_chats()
        self.hook_url = await self.receiver.start()
        await self.server.start()
        self.http = aiohttp.ClientSession(self.server.base_url)
        return self

    async def __aexit__(self, *exc) -> None:
        await self.http.close()
        await self.server.stop()
        await self.receiver.runner.cleanup()
        await self.sender.close()

    async def key(self, name: str, **kw) -> api_keys.NewKey:
        async with self.sm() as s, s.begin():
            return await api_keys.create_key(self.desk.office.ctx(s), name, **kw)

    async def post(self, key: str | None, **fields) -> tuple[int, object]:
        data = {k: v for k, v in fields.items() if v is not None}
        if key is not None:
            data["api_key"] = key
        async with self.http.post(f"{API}/requests.json", data=data) as r:
            return r.status, await r.json()

    async def get(self, path: str, key: str | None = None, **params) -> tuple[int, object]:
        if key is not None:
            params["api_key"] = key
        async with self.http.get(f"{API}/{path}", params=params) as r:
            return r.status, await r.json()


@pytest.fixture
async def api(sessionmaker):
    async with Api(sessionmaker, MovingClock()) as a:
        yield a


def hotline(**over) -> dict:
    fields = {"service_code": "shizheng", "description": "文一路口路灯不亮", **INSIDE_CY01,
              "address_string": "文一西路与古翠路口", "first_name": "大妈", "last_name": "王",
              "phone": "13812345678", "external_id": "12345-20261123-0001",
              "media_url": "https://hotline.example/photo/1.jpg"}
    fields.update(over)
    return fields


async def test_round_trip_post_chat_get_rating_and_webhooks(api: Api):
    hot = await api.key("12345热线", source="hotline", webhook_url=api.hook_url)

    status, body = await api.post(hot.secret, **hotline())
    assert status == 201, body
    [created] = body
    sid, token = created["service_request_id"], created["token"]
    case = await api.desk.case()
    assert str(case.id) == sid and created["case_number"] == case.number
    assert case.source == "hotline" and case.contact_phone == "13812345678"

    # the card in 翠苑第一网格's group shows the caller's masked number and the leader's buttons
    card = await api.desk.last("g:CY-01")
    assert case.number in card.text and "上报人：王** 138****5678" in card.text and "13812345678" not in card.text
    assert "派遣" in card.labels()

    # the loop runs in chat, through the same handlers as a resident's report
    await api.desk.press(LEADER, "派遣", group="CY-01")
    await api.desk.press(LEADER, (await api.desk.person(WORKER)).name, group="CY-01")
    await api.desk.press(WORKER, "接收")
    await api.desk.press(WORKER, "办结")
    await api.desk.send(WORKER, "已更换灯泡，路灯恢复")
    await api.desk.press(WORKER, "提交结果")
    await api.desk.press(LEADER, "核查通过", group="CY-01")
    assert (await api.desk.case()).status == "closed"

    status, [rec] = await api.get(f"requests/{sid}.json", hot.secret)
    assert status == 200
    assert rec["status"] == "closed" and rec["status_notes"] == "已更换灯泡，路灯恢复"
    assert rec["service_code"] == "shizheng" and rec["service_name"] == "市政设施"
    assert rec["grid_code"] == "CY-01" and rec["case_number"] == case.number
    assert rec["status_zh"] == "已结案" and rec["gridbot_status"] == "closed"
    assert rec["external_id"] == "12345-20261123-0001" and rec["token"] == token
    assert rec["media_url"] == "https://hotline.example/photo/1.jpg"
    assert rec["lat"] == pytest.approx(30.29) and rec["long"] == pytest.approx(120.105)
    assert rec["requested_datetime"].endswith("+08:00")
    assert [n["action"] for n in rec["notes"]] == ["reported", "registered", "dispatched", "accepted",
                                                  "resolved", "verified"]

    # 回访: the hotline reports the caller's rating
    async with api.http.post(f"{API}/requests/{sid}/rating.json",
                             data={"api_key": hot.secret, "rating": "满意", "comment": "修得快"}) as r:
        assert r.status == 200
        [rated] = await r.json()
    assert rated["rating"] == "satisfied" and rated["rating_comment"] == "修得快"

    status, found = await api.get(f"tokens/{token}.json", hot.secret)
    assert status == 200 and found == [{"service_request_id": sid, "token": token}]

    # every step reaches the webhook once, in order, signed with the key's webhook secret
    await api.delivery.drain()
    await api.delivery.drain()
    got = api.receiver.got
    events = [json.loads(b)["event"] for _, b in got]
    assert events == ["registered", "dispatched", "accepted", "resolved", "verified", "rated"]
    for headers, body in got:
        expected = "sha256=" + hmac.new(hot.webhook_secret.encode(), body, hashlib.sha256).hexdigest()
        assert headers["X-Gridbot-Signature"] == expected
    assert len({h["X-Gridbot-Delivery"] for h, _ in got}) == len(got)
    seqs = [json.loads(b)["sequence"] for _, b in got]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    last = json.loads(got[-1][1])["service_request"]
    assert last["status"] == "closed" and last["rating"] == "satisfied" and last["service_request_id"] == sid
    assert await api.desk.count(Outbox, Outbox.channel == "webhook", Outbox.status != "sent") == 0


async def test_webhook_retries_in_order_and_never_twice(api: Api):
    hot = await api.key("热线", webhook_url=api.hook_url)
    status, [created] = await api.post(hot.secret, **hotline(grid_code="CY-01", lat=None, long=None))
    assert status == 201
    await api.desk.press(LEADER, "立案", group="CY-01")
    await api.desk.press(LEADER, "派遣", group="CY-01")
    await api.desk.press(LEADER, (await api.desk.person(WORKER)).name, group="CY-01")

    api.receiver.fail = 1  # the platform is down for the first attempt
    await api.delivery.drain()
    # the next change waits behind the failed one (the key's head), so nothing else went meanwhile
    assert [json.loads(b)["event"] for _, b in api.receiver.got] == ["registered"]
    api.clock.advance(2)  # past the first backoff (1 s)
    await api.delivery.drain()
    got = [(h["X-Gridbot-Delivery"], json.loads(b)["event"]) for h, b in api.receiver.got]
    # the failed one is retried first: the next change waited behind it
    assert [e for _, e in got] == ["registered", "registered", "dispatched"]
    assert got[0][0] == got[1][0]  # the retry carries the same delivery id
    assert await api.desk.count(Outbox, Outbox.channel == "webhook", Outbox.status == "sent") == 2
    api.clock.advance(600)
    await api.delivery.drain()
    assert len(api.receiver.got) == 3  # nothing is sent twice


async def test_bad_input_gets_the_standards_errors_and_writes_nothing(api: Api):
    hot = await api.key("热线")
    status, _ = await api.post(hot.secret, **hotline())
    assert status == 201
    before = {m: await api.desk.count(m) for m in (Case, CaseEvent, Person, ApiRequest, Outbox)}

    async def refused(expect: int, key: str | None = hot.secret, **fields) -> str:
        status, body = await api.post(key, **fields)
        assert status == expect, body
        [err] = body
        assert err["code"] == expect and err["description"]
        return err["description"]

    await refused(403, key=None, **hotline(external_id="a1"))
    await refused(403, key="gbk_not-a-key", **hotline(external_id="a2"))
    assert "service_code" in await refused(400, **hotline(service_code=None, external_id="a3"))
    assert "nosuch" in await refused(400, **hotline(service_code="nosuch", external_id="a4"))
    await refused(400, **hotline(description="", external_id="a5"))
    assert "不在本辖区" in await refused(400, **hotline(lat="0", long="0", external_id="a6"))
    await refused(400, **hotline(lat="north", external_id="a7"))
    await refused(400, **hotline(lat=None, long=None, address_string="某小区", external_id="a8"))
    await refused(400, **hotline(grid_code="XH", external_id="a9"))  # a street, not a grid
    assert "太长" in await refused(400, **hotline(description="灯" * 5000, external_id="a10"))
    await refused(400, **hotline(media_url="javascript:alert(1)", external_id="a11"))
    await refused(400, **hotline(phone="call me", external_id="a12"))
    await refused(400, **hotline(crs="mars", external_id="a13"))
    # a 1 MB description is over the server's body limit: 413, still in the standard's format
    assert "1 MB" in await refused(413, **hotline(description="x" * (1024 * 1024), external_id="a14"))
    # the same caller id again: one case, and the error names it
    status, [err] = await api.post(hot.secret, **hotline())
    assert status == 409 and err["code"] == 409
    assert err["service_request_id"] == str((await api.desk.case()).id)

    after = {m: await api.desk.count(m) for m in before}
    assert after == before

    # the English catalogue answers with ?locale=en
    async with api.http.post(f"{API}/requests.json?locale=en", data={"api_key": hot.secret}) as r:
        [err] = await r.json()
    assert r.status == 400 and "service_code" in err["description"] and "缺少" not in err["description"]


async def test_address_names_a_grid_and_gcj02_points_are_converted(api: Api):
    hot = await api.key("热线")
    status, [a] = await api.post(hot.secret, **hotline(lat=None, long=None, external_id="b1",
                                                        address_string="翠苑第一网格 5幢门口"))
    assert status == 201
    from workflows.geo import from_wgs84

    lat, lon = from_wgs84(30.290, 120.105, "gcj02")  # what an Amap-based platform sends for the same spot
    # as a JSON body this time, with numbers as numbers
    async with api.http.post(f"{API}/requests.json", json={**hotline(lat=lat, long=lon, crs="gcj02", external_id="b2"),
                                                           "api_key": hot.secret}) as r:
        assert r.status == 201, await r.text()
        [b] = await r.json()
    async with api.http.post(f"{API}/requests.json", data="[1, 2]", headers={"Content-Type": "application/json"}) as r:
        assert r.status == 400 and (await r.json())[0]["code"] == 400
    async with api.sm() as s:
        grids = {c.id: c.grid_id for c in (await s.execute(select(Case))).scalars()}
    cy01 = (await api.desk.node("CY-01")).id
    assert grids[int(a["service_request_id"])] == cy01 and grids[int(b["service_request_id"])] == cy01


async def test_keys_see_only_their_own_cases_unless_read_all(api: Api):
    hot = await api.key("热线")
    other = await api.key("区平台", source="district")
    reader = await api.key("市中心", source="city", read_all=True)
    _, [mine] = await api.post(hot.secret, **hotline(external_id="same-id"))
    _, [theirs] = await api.post(other.secret, **hotline(external_id="same-id", service_code="huanjing"))
    # a resident's chat report, for the read-all key
    await api.desk.send("r9", "/report")
    await api.desk.press("r9", "环境卫生")
    await api.desk.send("r9", "垃圾没人清")
    await api.desk.press("r9", "下一步")
    await api.desk.send("r9", location=(30.290, 120.105))
    await api.desk.press("r9", "跳过")
    await api.desk.press("r9", "提交")
    chat_case = await api.desk.case()
    assert chat_case.source == "resident"

    status, body = await api.get("requests.json", hot.secret)
    assert status == 200 and [r["service_request_id"] for r in body] == [mine["service_request_id"]]
    status, body = await api.get(f"requests/{theirs['service_request_id']}.json", hot.secret)
    assert status == 404 and body[0]["code"] == 404
    status, _ = await api.get(f"tokens/{theirs['token']}.json", hot.secret)
    assert status == 404
    status, body = await api.get("requests.json", reader.secret)
    assert {r["service_request_id"] for r in body} == {mine["service_request_id"], theirs["service_request_id"],
                                                        str(chat_case.id)}
    assert (await api.desk.case(None)).source == "resident"
    async with api.sm() as s:
        sources = {c.id: c.source for c in (await s.execute(select(Case))).scalars()}
    assert sources[int(theirs["service_request_id"])] == "district"

    # the standard's filters
    _, body = await api.get("requests.json", reader.secret, service_code="huanjing")
    assert {r["service_request_id"] for r in body} == {theirs["service_request_id"], str(chat_case.id)}
    _, body = await api.get("requests.json", reader.secret, status="closed")
    assert body == []
    _, body = await api.get("requests.json", reader.secret, status="open", service_request_id=mine["service_request_id"])
    assert [r["service_request_id"] for r in body] == [mine["service_request_id"]]
    _, body = await api.get("requests.json", reader.secret, start_date="2030-01-01T00:00:00+08:00")
    assert body == []
    status, [err] = await api.get("requests.json", reader.secret, start_date="yesterday")
    assert status == 400 and "start_date" in err["description"]
    # a read-all key reads, but cannot rate a case it did not create
    async with api.http.post(f"{API}/requests/{mine['service_request_id']}/rating.json",
                             data={"api_key": reader.secret, "rating": "满意"}) as r:
        assert r.status == 404

    # revoked: refused at once
    async with api.sm() as s, s.begin():
        await api_keys.revoke_key(api.desk.office.ctx(s), "热线")
    status, [err] = await api.get("requests.json", hot.secret)
    assert status == 403


async def test_keys_are_hashed_and_rate_limited(api: Api):
    new = await api.key("慢速", rate_per_minute=3)
    async with api.sm() as s:
        row = (await s.execute(select(ApiKey))).scalar_one()
    assert row.key_hash == hashlib.sha256(new.secret.encode()).hexdigest()
    assert new.secret not in json.dumps([str(getattr(row, c.key)) for c in ApiKey.__table__.columns])
    for _ in range(3):
        status, _ = await api.get("requests.json", new.secret)
        assert status == 200
    async with api.http.get(f"{API}/requests.json", params={"api_key": new.secret}) as r:
        assert r.status == 429 and int(r.headers["Retry-After"]) > 0
        assert (await r.json())[0]["code"] == 429
    api.clock.advance(61)
    status, _ = await api.get("requests.json", new.secret)
    assert status == 200


async def test_services_and_openapi(api: Api):
    status, body = await api.get("services.json")
    assert status == 200
    codes = {s["service_code"]: s for s in body}
    assert codes["huanjing"]["service_name"] == "环境卫生" and codes["huanjing"]["metadata"] is False
    status, body = await api.get("services/xiaofang.json")
    assert status == 200 and body == {"service_code": "xiaofang", "attributes": []}
    status, [err] = await api.get("services/nosuch.json")
    assert status == 404 and err["code"] == 404
    async with api.http.get("/openapi.json") as r:
        paths = (await r.json())["paths"]
    assert {f"{API}/services.json", f"{API}/requests.json", API + "/requests/{id}.json",
            API + "/tokens/{token}.json"} <= set(paths)
    assert "post" in paths[f"{API}/requests.json"] and "get" in paths[f"{API}/requests.json"]


async def test_key_rules(api: Api):
    from workflows.errors import Invalid

    async with api.sm() as s, s.begin():
        ctx = api.desk.office.ctx(s)
        for bad in ({"source": "resident"}, {"source": "Hot Line"}, {"webhook_url": "ftp://x"},
                    {"rate_per_minute": 0}):
            with pytest.raises(Invalid):
                await api_keys.create_key(ctx, "k", **bad)
        await api_keys.create_key(ctx, "k")
        with pytest.raises(Invalid):
            await api_keys.create_key(ctx, "k")


def test_api_key_command_prints_the_key_once(db_url, monkeypatch, capsys):
    import asyncio

    from bot import cli
    from bot.db import make_engine, make_sessionmaker
    from workflows.context import Ctx
    from workflows.errors import NotAllowed

    monkeypatch.setenv("DATABASE_URL", db_url)
    cli.get_settings.cache_clear()
    assert cli.main(["api-key", "create", "12345热线", "--webhook", "https://hotline.example/hook",
                     "--rate", "30"]) == 0
    out = capsys.readouterr().out
    secret = next(line for line in out.splitlines() if line.startswith("gbk_"))
    assert "webhook secret" in out
    assert cli.main(["api-key", "list"]) == 0
    listing = capsys.readouterr().out
    assert "12345热线" in listing and "hotline" in listing and "30/min" in listing and secret not in listing
    assert cli.main(["api-key", "create", "假居民", "--source", "resident"]) == 1
    assert "resident" in capsys.readouterr().err

    async def check(expect_ok: bool) -> None:
        engine = make_engine(db_url)
        try:
            async with make_sessionmaker(engine)() as s:
                if expect_ok:
                    assert (await api_keys.authenticate(Ctx(session=s), secret)).source == "hotline"
                else:
                    with pytest.raises(NotAllowed):
                        await api_keys.authenticate(Ctx(session=s), secret)
        finally:
            await engine.dispose()

    asyncio.run(check(True))
    assert cli.main(["api-key", "revoke", "12345热线"]) == 0
    asyncio.run(check(False))
    cli.get_settings.cache_clear()


async def test_terminal_run_serves_the_api_when_a_key_exists(db_url, sessionmaker):
    """`gridbot run` without chat tokens: the terminal, and beside it the API once a key exists;
    an API request's card reaches the terminal group at once, not after the next typed line."""
    import io

    from bot.app import _close_webhooks, _terminal_api, open_runtime
    from bot.channels.terminal import TerminalAdapter, TerminalShell
    from bot.settings import Settings

    from .support import until

    settings = Settings(database_url=db_url, wecom_callback_port=0, http_port=None, _env_file=None)
    out = io.StringIO()
    adapter = TerminalAdapter(out)
    rt = await open_runtime(settings, {"terminal": adapter}, frozenset({"terminal"}))
    try:
        assert await _terminal_api(settings, rt) is None  # no key, no HTTP_PORT: no server
        await TerminalShell(rt.office, rt.delivery, adapter).prepare()
        async with rt.sessionmaker() as s, s.begin():
            new = await api_keys.create_key(rt.office.ctx(s), "热线")
        server = await _terminal_api(settings, rt)
        assert server is not None
        try:
            async with aiohttp.ClientSession(server.base_url) as http:
                async with http.post(f"{API}/requests.json", data={**hotline(), "api_key": new.secret}) as r:
                    assert r.status == 201
                    [created] = await r.json()
            await until(lambda: created["case_number"] in out.getvalue(), what="the card in the terminal")
            assert "138****5678" in out.getvalue()
        finally:
            await server.stop()
    finally:
        await _close_webhooks(rt)
        await rt.engine.dispose()


async def test_gridbot_run_serves_the_api_beside_telegram(db_url, sessionmaker):
    """The real `gridbot run` process with Telegram (the fake Bot API): the API is on its web server,
    the card goes to the grid's Telegram group, and its delivery worker sends the webhooks."""
    import os
    import signal
    import subprocess
    import sys
    from datetime import UTC, datetime
    from pathlib import Path

    from tests.fakes.telegram_api import FakeTelegram
    from workflows import cases
    from workflows.context import Ctx
    from workflows.models import GroupBinding, Node

    from .support import free_port, until

    tg = await FakeTelegram().start()
    receiver = Receiver()
    hook = await receiver.start()
    group = -100123
    async with sessionmaker() as s, s.begin():
        node = (await s.execute(select(Node).where(Node.code == "CY-01"))).scalar_one()
        s.add(GroupBinding(node_id=node.id, channel="telegram", chat_id=str(group), title="翠苑第一网格",
                           status="active", bound_at=datetime.now(UTC)))
        new = await api_keys.create_key(Ctx(session=s), "热线", webhook_url=hook)
        leader = (await s.execute(select(Person).where(Person.code == LEADER))).scalar_one().id
        worker = (await s.execute(select(Person).where(Person.code == WORKER))).scalar_one().id
    port = free_port()
    env = {**os.environ, "DATABASE_URL": db_url, "TELEGRAM_BOT_TOKEN": tg.token,
           "TELEGRAM_API_BASE_URL": tg.base_url, "HTTP_HOST": "127.0.0.1", "HTTP_PORT": str(port),
           "SCHEDULER_ENABLED": "false", "DELIVERY_POLL_SECONDS": "0.1", "LOG_LEVEL": "WARNING"}
    proc = subprocess.Popen([sys.executable, "-m", "bot.cli", "run"], cwd=Path(__file__).parent.parent, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession(base) as http:
            async def up() -> bool:
                try:
                    async with http.get("/healthz") as r:
                        return r.status == 200
                except aiohttp.ClientError:
                    return False

            await until(up, timeout=60, what="gridbot run's web server")
            async with http.post(f"{API}/requests.json", data={**hotline(), "api_key": new.secret}) as r:
                assert r.status == 201, await r.text()
                [created] = await r.json()
            await until(lambda: any(created["case_number"] in (c.params.get("text") or "")
                                    and "138****5678" in c.params["text"] for c in tg.sent_to(group)),
                        timeout=30, what="the card in the Telegram group")
            async with sessionmaker() as s, s.begin():  # the leader dispatches (the rule the chat button calls)
                await cases.dispatch(Ctx(session=s, channels=frozenset({"telegram"})), leader,
                                     int(created["service_request_id"]), assignee_id=worker)
            await until(lambda: len(receiver.got) >= 2, timeout=30, what="the webhooks")
            assert [json.loads(b)["event"] for _, b in receiver.got] == ["registered", "dispatched"]
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
        await receiver.runner.cleanup()
        await tg.stop()
    assert proc.returncode == 0, err


async def test_unsatisfied_rating_reopens_the_case_once(api: Api):
    from workflows import cases

    hot = await api.key("热线", webhook_url=api.hook_url)
    _, [created] = await api.post(hot.secret, **hotline())
    sid = created["service_request_id"]

    async def rate(rating: str) -> tuple[int, list]:
        async with api.http.post(f"{API}/requests/{sid}/rating.json",
                                 data={"api_key": hot.secret, "rating": rating}) as r:
            return r.status, await r.json()

    status, [err] = await rate("满意")  # not closed yet
    assert status == 409 and err["code"] == 409
    leader, worker = (await api.desk.person(LEADER)).id, (await api.desk.person(WORKER)).id
    async with api.sm() as s, s.begin():
        ctx = api.desk.office.ctx(s)
        await cases.dispatch(ctx, leader, int(sid), assignee_id=worker)
        await cases.finish(ctx, worker, int(sid), "已修好")
        await cases.verify(ctx, leader, int(sid), passed=True)
    status, [err] = await rate("还行吧")
    assert status == 400 and err["code"] == 400
    status, [rec] = await rate("不满意")
    assert status == 200 and rec["status"] == "open" and rec["gridbot_status"] == "registered"
    assert [n["action"] for n in rec["notes"]][-2:] == ["rated", "reopened"]
    await api.delivery.drain()
    assert [json.loads(b)["event"] for _, b in api.receiver.got][-2:] == ["rated", "reopened"]


async def test_the_hotline_answers_a_request_for_more(api: Api):
    """要求补充 on a hotline case: the question reaches the hotline (webhook, status_notes) and the
    caller's answer comes back through the API, to the same rule a resident's answer uses."""
    hot = await api.key("热线", webhook_url=api.hook_url)
    _, [created] = await api.post(hot.secret, **hotline())
    sid = created["service_request_id"]
    await api.desk.press(LEADER, "要求补充", group="CY-01")
    await api.desk.send(LEADER, "请说明是哪一根灯杆", group="CY-01")
    status, [rec] = await api.get(f"requests/{sid}.json", hot.secret)
    assert rec["gridbot_status"] == "needs_info" and rec["status_notes"] == "请说明是哪一根灯杆"
    await api.delivery.drain()
    assert json.loads(api.receiver.got[-1][1])["event"] == "asked_more"

    async with api.http.post(f"{API}/requests/{sid}/supplement.json",
                             data={"api_key": hot.secret, "description": "5号楼门口那根",
                                   "media_url": "https://hotline.example/photo/2.jpg"}) as r:
        assert r.status == 200, await r.text()
        [rec] = await r.json()
    assert rec["gridbot_status"] == "reported" and rec["notes"][-1]["note"] == "5号楼门口那根"
    assert len((await api.desk.case()).attachments) == 2
    async with api.http.post(f"{API}/requests/{sid}/supplement.json",
                             data={"api_key": hot.secret, "description": "再说一次"}) as r:
        assert r.status == 409  # nothing was asked this time
