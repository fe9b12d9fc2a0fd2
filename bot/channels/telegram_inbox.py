"""Telegram updates through our own inbox table, for both transports and both ways in.

python-telegram-bot and aiogram confirm an update to Telegram (the getUpdates offset) as soon as
they have fetched it, before it is handled: a crash then loses it. Here an update is first
written to `inbox_update` and committed; only then is it confirmed (polling: the next
getUpdates carries offset = last stored id + 1; webhook: the 200 answer). A worker handles the
stored updates in order and deletes each row once its effect is committed. A crash between the
two is harmless: the office remembers every update id (`inbound_seen`), so a repeat has no effect.
The offset is not stored: Telegram keeps it, and a new process starts without one (so it also
survives Telegram choosing new update ids after a quiet week).

An update that cannot be read (a field from another Bot API version, a malformed part) is kept
as `unreadable` with the error, logged once, and skipped: it never blocks the updates behind it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import zlib
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from aiohttp import web
from sqlalchemy import delete, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from workflows.clock import Clock
from workflows.inbox_models import InboxUpdate
from workflows.routines.common import dialect_insert

from ..lease import RENEW as LEASE_RENEW
from ..lease import Lease
from .telegram_validate import clean, problem

log = logging.getLogger(__name__)

CHANNEL = "telegram"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
EXCERPT = 300  # characters of an unreadable update that go to the log
IDLE_LOOK = 1.0  # seconds between looks at the inbox when nothing woke the worker

# parse(raw) -> something to handle, raising when the update cannot be read; handle(parsed);
# unreadable(update_id, raw) tells the sender, when they can be made out, that it was not understood
Parse = Callable[[dict], Any]
Handle = Callable[[Any], Awaitable[None]]
Unreadable = Callable[[int, Any], Awaitable[None]]


def excerpt(raw: Any) -> str:
    text = raw if isinstance(raw, str) else json.dumps(raw, ensure_ascii=False, default=str)
    return text[:EXCERPT]


def bot_api_url(base_url: str | None, token: str) -> str:
    """`https://api.telegram.org/bot<token>` from TELEGRAM_API_BASE_URL in either accepted form."""
    base = (base_url or "https://api.telegram.org/bot").rstrip("/")
    if not base.endswith("/bot"):
        base += "/bot"
    return f"{base}{token}"


class Inbox:
    """The stored updates of one channel and the worker that handles them."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], clock: Clock,
                 parse: Parse, handle: Handle, *, channel: str = CHANNEL,
                 unreadable: Unreadable | None = None) -> None:
        self.sessionmaker = sessionmaker
        self.clock = clock
        self.parse = parse
        self.handle = handle
        self.unreadable = unreadable
        self.channel = channel
        self._wake = asyncio.Event()
        self._worker: asyncio.Task | None = None
        self._stopping = False

    # ---- storing

    async def put(self, updates: list[dict]) -> None:
        """Store updates (a repeat of a stored id is ignored); returns once committed."""
        if not updates:
            return
        stored = []
        for u in updates:
            u2, changed = clean(u)
            if changed:  # once, here: the stored copy is the clean one
                log.warning("telegram: update %s had lone surrogates or NUL characters, replaced: %s",
                            u["update_id"], excerpt(u2))
            stored.append(u2)
        await self._insert(stored)
        self._wake.set()

    async def _insert(self, updates: list[dict]) -> None:
        now = self.clock.now()
        rows = {u["update_id"]: {"channel": self.channel, "update_id": u["update_id"], "payload": u,
                                 "status": "pending", "received_at": now} for u in updates}
        async with self.sessionmaker() as session, session.begin():
            # one statement; an id stored already (a repeat fetch, two webhook calls) is skipped
            await session.execute(dialect_insert(session)(InboxUpdate).values(list(rows.values()))
                                  .on_conflict_do_nothing(index_elements=["channel", "update_id"]))

    async def put_unreadable(self, update_id: int, payload: Any, error: str) -> bool:
        """Keep an update that cannot be read, for inspection; logs it the first time only.
        True when it was new."""
        payload, _ = clean(payload if isinstance(payload, dict) else {"raw": excerpt(payload)})
        error, _ = clean(error[:2000])
        async with self.sessionmaker() as session, session.begin():
            row = await session.get(InboxUpdate, (self.channel, update_id))
            if row is not None and row.status == "unreadable":
                return False
            log.warning("telegram: unreadable update %s skipped (%s): %s", update_id, error, excerpt(payload))
            if row is None:
                session.add(InboxUpdate(channel=self.channel, update_id=update_id, payload=payload,
                                        status="unreadable", error=error, received_at=self.clock.now()))
            else:
                row.status, row.error = "unreadable", error
        return True

    # ---- handling

    def start(self) -> None:
        self._stopping = False
        self._wake.set()  # what a crash left pending goes first
        self._worker = asyncio.create_task(self._work())

    async def stop(self) -> None:
        """Finish the update in hand; what is still pending stays stored for the next start."""
        self._stopping = True
        self._wake.set()
        if self._worker is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None

    async def drain(self) -> None:
        """Handle everything stored now (tests and shutdown of a webhook)."""
        await self._handle_pending()

    async def _work(self) -> None:
        while not self._stopping:
            # a look every IDLE_LOOK seconds without a wake-up: updates another process of the bot
            # stored (a webhook behind one address reaching either) are handled here (bot/lease.py)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), IDLE_LOOK)
            self._wake.clear()
            try:
                await self._handle_pending()
            except Exception:  # the database went away: try again on the next wake or in a while
                log.exception("telegram: handling stored updates failed")
                await asyncio.sleep(1)
                self._wake.set()

    async def _handle_pending(self) -> None:
        while not self._stopping:
            async with self.sessionmaker() as session:
                rows = (await session.execute(
                    select(InboxUpdate.update_id, InboxUpdate.payload)
                    .where(InboxUpdate.channel == self.channel, InboxUpdate.status == "pending")
                    .order_by(InboxUpdate.update_id).limit(100))).all()
            if not rows:
                return
            # the handled rows go in one delete per batch, not one transaction each: a crash
            # before it makes them repeats, which the office's `inbound_seen` makes harmless
            handled: list[int] = []
            try:
                for update_id, payload in rows:
                    if self._stopping:
                        return
                    if await self._handle_one(update_id, payload):
                        handled.append(update_id)
            finally:
                if handled:
                    await self._forget(handled)

    async def _forget(self, update_ids: list[int]) -> None:
        async with self.sessionmaker() as session, session.begin():
            await session.execute(delete(InboxUpdate).where(
                InboxUpdate.channel == self.channel, InboxUpdate.update_id.in_(update_ids),
                InboxUpdate.status == "pending"))

    async def _handle_one(self, update_id: int, payload: dict) -> bool:
        """Handle one stored update; True when its row is to be deleted (not kept as unreadable)."""
        wrong = problem(payload)
        parsed = None
        if wrong is None:
            try:
                parsed = self.parse(payload)
            except Exception as e:  # the library's own reading failed: a field from another API version
                wrong = f"{type(e).__name__}: {e}"
        if wrong is not None:
            if await self.put_unreadable(update_id, payload, wrong) and self.unreadable is not None:
                try:
                    await self.unreadable(update_id, payload)
                except Exception:
                    log.exception("telegram: answering unreadable update %s failed", update_id)
            return False
        try:
            await self.handle(parsed)
        except Exception:
            # the office answers its own failures; this is the library's wiring failing
            log.exception("telegram: update %s failed in the handler", update_id)
        return True


# ---------------------------------------------------------------- long polling


class Poller:
    """getUpdates by hand: the raw JSON goes to the inbox and the offset moves only after the commit."""

    def __init__(self, inbox: Inbox, api_url: str, *, timeout: int = 30,
                 allowed_updates: list[str] | None = None) -> None:
        self.inbox = inbox
        self.api_url = api_url
        self.timeout = timeout
        self.allowed_updates = allowed_updates
        self._task: asyncio.Task | None = None
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self._session = aiohttp.ClientSession()
        await self._call("deleteWebhook", {"drop_pending_updates": False})
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _call(self, method: str, body: dict, timeout: float = 30) -> Any:
        assert self._session is not None
        async with self._session.post(f"{self.api_url}/{method}", json=body,
                                      timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
            data = await resp.json(content_type=None)
        if not data.get("ok"):
            raise RuntimeError(f"{method}: {data.get('description')}")
        return data["result"]

    async def _loop(self) -> None:
        # No offset at first: Telegram itself remembers what an earlier process confirmed, and
        # sends again only what was fetched but never confirmed — stored already, perhaps even
        # handled; the office's memory of update ids makes such a repeat harmless.
        offset: int | None = None
        delay = 1.0
        while True:
            body: dict[str, Any] = {"timeout": self.timeout}
            if offset is not None:
                body["offset"] = offset
            if self.allowed_updates is not None:
                body["allowed_updates"] = self.allowed_updates
            try:
                result = await self._call("getUpdates", body, timeout=self.timeout + 10)
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.warning("telegram: getUpdates failed (%s); again in %.0f s", e, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30)
                continue
            delay = 1.0
            good = [u for u in result if isinstance(u, dict) and isinstance(u.get("update_id"), int)
                    and not isinstance(u.get("update_id"), bool)]
            for u in result:
                if u not in good:  # no id: nothing can be stored under it, and nothing to confirm
                    log.warning("telegram: update without an update_id ignored: %s", excerpt(u))
            try:
                await self.inbox.put(good)  # committed before the next call confirms them
            except Exception as e:  # the database is away: the same updates come again, unconfirmed
                log.warning("telegram: storing %d updates failed (%s); again in %.0f s", len(good), e, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30)
                continue
            if good:
                offset = max(u["update_id"] for u in good) + 1


# ---------------------------------------------------------------- webhook


def webhook_handler(inbox: Inbox, secret: str | None) -> Callable[[web.Request], Awaitable[web.Response]]:
    """The webhook: 403 without the secret; 200 only once the update is stored (or stored as
    unreadable); 503 when the database cannot take it, so Telegram tries again later."""

    async def handle(request: web.Request) -> web.Response:
        given = request.headers.get(SECRET_HEADER, "")
        if not secret or not hmac.compare_digest(given.encode(), secret.encode()):
            return web.Response(status=403, text="Forbidden")
        body = await request.read()
        try:
            raw = json.loads(body)
        except ValueError as e:
            update_id = -(zlib.crc32(body) or 1)  # no id to store it under: a stable stand-in
            try:
                await inbox.put_unreadable(update_id, body.decode("utf-8", "replace"), f"not JSON: {e}")
            except Exception:
                log.exception("telegram: could not store an unreadable webhook body")
            return web.Response(text="ok")
        try:
            update_id = raw.get("update_id") if isinstance(raw, dict) else None
            if isinstance(update_id, int) and not isinstance(update_id, bool):
                await inbox.put([raw])
            else:
                await inbox.put_unreadable(-(zlib.crc32(body) or 1), raw, "no update_id")
        except Exception:
            log.exception("telegram: storing a webhook update failed")
            return web.Response(status=503, text="try again")
        return web.Response(text="ok")

    return handle


def register_routes(app: web.Application, inbox: Inbox, path: str, secret: str | None) -> None:
    """Mount the Telegram webhook on a bare aiohttp application."""
    app.router.add_post("/" + path.lstrip("/"), webhook_handler(inbox, secret))


def add_webhook(server, inbox: Inbox, path: str, secret: str | None) -> None:
    """Put the Telegram webhook on the process's one web server (bot/web.py `WebServer`)."""
    server.add("POST", "/" + path.lstrip("/"), webhook_handler(inbox, secret), tag="telegram",
               summary="Telegram webhook: 200 once the update is stored in the inbox")


class WebhookServer:
    """Until the one web server takes the route: our own AppRunner on TELEGRAM_WEBHOOK_LISTEN/PORT."""

    def __init__(self, inbox: Inbox, path: str, secret: str | None, host: str, port: int) -> None:
        self.app = web.Application()
        register_routes(self.app, inbox, path, secret)
        self.host, self.port = host, port
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


# ---------------------------------------------------------------- what both transports use


class Intake:
    """A Telegram channel's way in, the same for both libraries: the inbox, and either the
    poller or the webhook route on the process's one web server (or a server of its own on
    TELEGRAM_WEBHOOK_LISTEN/PORT when the channel runs without one: tests, embedding)."""

    def __init__(self, settings, *, poll_timeout: int = 30, allowed_updates: list[str] | None = None) -> None:
        self.settings = settings
        self.poll_timeout = poll_timeout
        self.allowed_updates = allowed_updates
        self.inbox: Inbox | None = None
        self.poller: Poller | None = None
        self._handler: Callable[[web.Request], Awaitable[web.Response]] | None = None
        self._server = None
        self._own_server: WebhookServer | None = None
        self.lease: Lease | None = None
        self._leading: asyncio.Task | None = None
        self._active = False  # this process holds the lease: it polls and handles
        self._standing_by = False

    @property
    def path(self) -> str:
        from urllib.parse import urlsplit

        return urlsplit(self.settings.telegram_webhook_url).path or "/"

    def routes(self, server) -> None:
        if self.settings.telegram_webhook_url:
            add_webhook(server, _Late(self), self.path, self.settings.telegram_webhook_secret)
            self._server = server

    async def start(self, office, parse: Parse, handle: Handle,
                    set_webhook: Callable[[], Awaitable[Any]]) -> None:
        self.office = office
        self.inbox = Inbox(office.sessionmaker, office.clock, parse, handle, unreadable=self._tell_sender)
        s = self.settings
        if s.telegram_webhook_url:  # every process stores what reaches it; the lease holder handles
            if self._server is None:
                self._own_server = WebhookServer(self.inbox, self.path, s.telegram_webhook_secret,
                                                 s.telegram_webhook_listen, s.telegram_webhook_port)
                await self._own_server.start()
            await set_webhook()
        self.lease = Lease(office.sessionmaker, "telegram:" + s.telegram_bot_token.split(":", 1)[0])
        await self._lead()  # a lone process polls from the start, not after the first renewal
        self._leading = asyncio.create_task(self._keep_leading())

    async def _keep_leading(self) -> None:
        while True:
            await asyncio.sleep(LEASE_RENEW)
            try:
                await self._lead()
            except Exception:  # e.g. the poller's first call failed: try again, never stop renewing
                log.exception("telegram: taking or renewing the inbox lease failed")

    async def _lead(self) -> None:
        """One try: take or renew the lease, and poll and handle while it is ours."""
        try:
            held = await self.lease.acquire()
        except (DBAPIError, OSError) as e:  # the database is away: the next try decides
            log.warning("telegram: the inbox lease could not be renewed (%s)", e)
            return
        if held and not self._active:
            if self._standing_by:
                log.info("telegram: this process now polls and handles the bot's updates")
            self.inbox.start()  # what a crash left stored goes first
            self._active, self._standing_by = True, False
        if held and self.poller is None and not self.settings.telegram_webhook_url:
            s = self.settings
            poller = Poller(self.inbox, bot_api_url(s.telegram_api_base_url, s.telegram_bot_token),
                            timeout=self.poll_timeout, allowed_updates=self.allowed_updates)
            try:
                await poller.start()
            except BaseException:  # the Bot API unreachable at start: the next try starts it
                await poller.stop()
                raise
            self.poller = poller
        elif not held and self._active:
            log.warning("telegram: %s took over the bot's updates; this process stands by", self.lease.other)
            await self._stand_down()
        elif not held and not self._standing_by:
            log.info("telegram: %s polls and handles the bot's updates; this process stands by",
                     self.lease.other)
            self._standing_by = True

    async def _stand_down(self) -> None:
        if self.poller is not None:
            await self.poller.stop()
            self.poller = None
        if self.inbox is not None:
            await self.inbox.stop()
        self._active = False

    async def stop(self) -> None:
        """Stop taking updates, then finish the one in hand; the rest waits, stored, for the next
        start (here or in another process of the bot, which takes the lease at its next try)."""
        if self._leading is not None:
            self._leading.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._leading
            self._leading = None
        await self._stand_down()
        if self._own_server is not None:
            await self._own_server.stop()
            self._own_server = None
        if self.lease is not None:
            try:
                await self.lease.release()
            except (DBAPIError, OSError) as e:  # it runs out on its own (TTL)
                log.warning("telegram: releasing the inbox lease failed: %s", e)

    async def _tell_sender(self, update_id: int, raw: Any) -> None:
        """An update we cannot read is answered like an unsupported message, when its sender can
        be made out: the person learns it did not arrive instead of waiting."""
        from handlers.events import Inbound

        from .telegram_validate import reply_address

        address = reply_address(raw)
        if address is None:
            return
        chat_id, user_id, is_group = address
        await self.office.handle(Inbound(channel=CHANNEL, chat_id=str(chat_id), user_id=str(user_id or chat_id),
                                         is_group=is_group, event_id=str(update_id), kind="unsupported"))


class _Late:
    """The inbox of an intake whose route is added before the channel starts."""

    def __init__(self, intake: Intake) -> None:
        self.intake = intake

    def __getattr__(self, name: str) -> Any:
        if self.intake.inbox is None:
            raise RuntimeError("the telegram channel has not started")
        return getattr(self.intake.inbox, name)
