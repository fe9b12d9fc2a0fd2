"""The one web server: /healthz reports the database and the age of the delivery queue; routes
added by a part (here a stand-in channel route) appear in the OpenAPI document."""

from __future__ import annotations

from datetime import timedelta

import aiohttp
from aiohttp import web

from bot.web import WebServer
from workflows.models import Outbox


async def test_healthz_and_openapi(sessionmaker, clock):
    server = WebServer("127.0.0.1", 0, sessionmaker, clock, max_queue_age=60)

    async def hello(request: web.Request) -> web.Response:
        return web.Response(text="hi")

    server.add("GET", "/hello", hello, summary="a channel's route", tag="test")
    await server.start()
    try:
        async with aiohttp.ClientSession(server.base_url) as http:
            async with http.get("/healthz") as r:
                assert r.status == 200
                assert await r.json() == {"status": "ok", "database": "ok",
                                          "delivery": {"pending": 0, "oldest_age_seconds": 0.0}}
            async with sessionmaker() as s, s.begin():
                s.add(Outbox(created_at=clock.now(), channel="terminal", chat_id="c", payload={"text": "x"},
                             status="pending", not_before=clock.now() - timedelta(seconds=90)))
            async with http.get("/healthz") as r:
                body = await r.json()
                assert r.status == 503 and body["delivery"] == {"pending": 1, "oldest_age_seconds": 90.0}
            async with http.get("/hello") as r:
                assert await r.text() == "hi"
            async with http.get("/openapi.json") as r:
                doc = await r.json()
                assert set(doc["paths"]) == {"/healthz", "/openapi.json", "/hello"}
                assert doc["paths"]["/hello"]["get"]["summary"] == "a channel's route"
    finally:
        await server.stop()
