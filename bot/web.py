"""The one HTTP server of `gridbot run`: one aiohttp Application on one host and port.

Every HTTP entry point lives here, so a deployment puts one TLS proxy in front of one port:
the WeChat Work callback, the Telegram webhook, `/healthz` and the API. A channel (or any other
part) adds its routes before the server starts, through `WebServer.add` — a channel runtime
that has a `routes(server)` method is given the server by `bot.app.run_channels` before its
`start`. Every route added this way is listed in the OpenAPI document at `/openapi.json`.

aiohttp because the channels already use it (wechatpy callbacks, aiogram, the fakes in tests):
one event loop, no second framework.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime

from aiohttp import web
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from workflows.clock import Clock, SystemClock
from workflows.models import Outbox

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# A request body above this is refused with 413 (WeChat Work callbacks are a few kB; the API's
# largest field, a description, is capped well below).
MAX_BODY = 1024 * 1024


class WebServer:
    """Collects routes, then serves them; `/healthz` and `/openapi.json` are always there."""

    def __init__(self, host: str, port: int, sessionmaker: async_sessionmaker[AsyncSession] | None = None,
                 clock: Clock | None = None, max_queue_age: float = 300.0) -> None:
        self.host, self.port = host, port
        self.sessionmaker = sessionmaker
        self.clock = clock or SystemClock()
        self.max_queue_age = max_queue_age
        self.app = web.Application(client_max_size=MAX_BODY)
        self._paths: dict[str, dict] = {}
        self._runner: web.AppRunner | None = None
        self.also_stop: WebServer | None = None  # a second site (the console on its own address)
        self.add("GET", "/healthz", self.healthz, summary="Health: database reachable, delivery queue age",
                 tag="health")
        self.add("GET", "/openapi.json", self.openapi, summary="This OpenAPI document", tag="health")

    # ------------------------------------------------------------------ routes

    def add(self, method: str, path: str, handler: Handler, *, summary: str = "", tag: str = "",
            doc: dict | None = None) -> None:
        """Adds a route (before `start`); `doc` is its OpenAPI operation object, merged over
        the summary and tag given here."""
        self.app.router.add_route(method, path, handler)
        op = {"summary": summary, "tags": [tag] if tag else [], "responses": {"200": {"description": "OK"}}}
        op.update(doc or {})
        self._paths.setdefault(path, {})[method.lower()] = op

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        if self.port == 0:  # tests ask for any free port
            self.port = self._runner.addresses[0][1]
        log.info("web server listening on %s:%s (%s)", self.host, self.port, ", ".join(sorted(self._paths)))

    async def stop(self) -> None:
        if self.also_stop is not None:
            await self.also_stop.stop()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def base_url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return f"http://{host}:{self.port}"

    # ------------------------------------------------------------------ built-in endpoints

    async def healthz(self, request: web.Request) -> web.Response:
        """200 when the database answers and the oldest due message waits less than
        `max_queue_age` seconds; 503 otherwise, with the reason."""
        body: dict = {"status": "ok"}
        if self.sessionmaker is None:
            return web.json_response(body)
        now: datetime = self.clock.now()
        try:
            async with self.sessionmaker() as session:
                await session.execute(text("SELECT 1"))
                pending, oldest = (await session.execute(
                    select(func.count(), func.min(Outbox.not_before))
                    .where(Outbox.status == "pending", Outbox.not_before <= now))).one()
        except Exception as e:  # the point of a health check: say so, don't raise
            log.warning("health check: database unreachable: %r", e)
            return web.json_response({"status": "fail", "database": "unreachable"}, status=503)
        age = max(0.0, (now - oldest).total_seconds()) if oldest is not None else 0.0
        body.update(database="ok", delivery={"pending": pending, "oldest_age_seconds": round(age, 1)})
        if age > self.max_queue_age:
            body["status"] = "fail"
            body["reason"] = f"delivery queue older than {self.max_queue_age:g} s"
            return web.json_response(body, status=503)
        return web.json_response(body)

    async def openapi(self, request: web.Request) -> web.Response:
        return web.json_response(self.openapi_document())

    def openapi_document(self) -> dict:
        return {
            "openapi": "3.0.3",
            "info": {"title": "gridbot", "version": "1",
                     "description": "Every HTTP entry point of one gridbot process."},
            "paths": {p: dict(ops) for p, ops in sorted(self._paths.items())},
        }


def from_settings(settings, sessionmaker=None, clock: Clock | None = None) -> WebServer:
    return WebServer(settings.web_host, settings.web_port, sessionmaker, clock,
                     max_queue_age=settings.health_max_queue_age)
