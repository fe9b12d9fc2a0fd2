"""The console's plumbing: page registry, sign-in and sessions, CSRF and Origin checks, rendering.

Every request is one transaction (the office's sessionmaker): a page reads in it, an action
changes the case and writes its notifications to the outbox in it, and the delivery worker is
woken after the commit — as for a chat message. A workflow refusal rolls everything back and
is shown on an error page; no traceback reaches the browser.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web
from jinja2 import Environment, PackageLoader, select_autoescape

from handlers import console as console_command
from handlers.office import Office
from workflows import codes, console_access, scope
from workflows.cases import can_view, get_case
from workflows.console_models import ConsoleSession
from workflows.context import Ctx
from workflows.errors import DomainError, Invalid, NotAllowed, NotFound, WrongState
from workflows.i18n import LANGUAGES, T, normalize
from workflows.models import Case, Node, Person

from ..web import WebServer

log = logging.getLogger(__name__)

COOKIE = "gridbot_console"
STATIC = Path(__file__).parent / "static"
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
STATUS_OF = {NotFound: 404, NotAllowed: 403, WrongState: 409, Invalid: 400}


class Refused(Exception):
    """An HTTP-level refusal shown as the error page (status and a message id)."""

    def __init__(self, status: int, msgid: str, **params: object) -> None:
        super().__init__(msgid)
        self.status, self.msgid, self.params = status, msgid, params


@dataclass
class Viewer:
    """The signed-in person, in this request's transaction.

    `paths` are the node paths their staff roles cover (workflows.scope); `case()` is the
    one way a page gets a case by id: out of scope it is "not found", like a missing one."""

    ctx: Ctx
    person: Person
    session: ConsoleSession
    t: T
    paths: list[str]
    request: web.Request
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def csrf(self) -> str:
        return self.session.csrf

    @property
    def language(self) -> str:
        return self.t.language

    async def case(self, case_id: int | str, *, lock: bool = False) -> Case:
        try:
            cid = int(case_id)
        except (TypeError, ValueError):
            raise Refused(404, "找不到该事件。") from None
        try:
            case = await get_case(self.ctx, cid, lock=lock)
        except NotFound:
            raise Refused(404, "找不到该事件。") from None
        if not await can_view(self.ctx, self.person.id, case):
            raise Refused(404, "找不到该事件。")  # 404, not 403: ids cannot be probed
        return case

    async def node(self, node_id: int | str) -> Node:
        """A node inside the person's scope (404 otherwise)."""
        try:
            node = await self.ctx.session.get(Node, int(node_id))
        except (TypeError, ValueError):
            node = None
        if node is None or not await scope.node_covered(self.ctx, self.paths, node):
            raise Refused(404, "找不到该网格节点。")
        return node


@dataclass
class _Named:
    name: str


@dataclass
class _Shown:
    """The base layout's view of a viewer whose transaction was rolled back."""

    person: _Named
    csrf: str
    request: web.Request


PageFn = Callable[[Viewer, web.Request], Awaitable[dict | web.StreamResponse]]
PublicFn = Callable[["Console", web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Page:
    method: str
    path: str
    fn: PageFn
    template: str | None
    nav: str | None  # message id of its entry in the navigation bar; None: not listed
    order: int
    summary: str


PAGES: list[Page] = []


def page(path: str, *, method: str = "GET", template: str | None = None, nav: str | None = None,
         order: int = 50, summary: str = ""):
    """Registers a console page or action (see the package docstring)."""

    def deco(fn: PageFn) -> PageFn:
        PAGES.append(Page(method, path, fn, template, nav, order, summary))
        return fn

    return deco


def _jinja() -> Environment:
    env = Environment(loader=PackageLoader("bot.console", "templates"),
                      autoescape=select_autoescape(["html"]), trim_blocks=True, lstrip_blocks=True)
    return env


class Console:
    def __init__(self, office: Office, *, url: str, session_hours: float = 12.0,
                 link_lifetime: timedelta = timedelta(minutes=10),
                 on_commit: Callable[[], None] | None = None) -> None:
        from . import load_pages

        load_pages()
        self.office = office
        self.url = url.rstrip("/")
        self.secure = self.url.startswith("https://")
        self.origin = _origin(self.url)
        self.session_hours = session_hours
        self.link_lifetime = link_lifetime
        self.on_commit = on_commit or office.on_commit
        self.env = _jinja()

    # ------------------------------------------------------------ wiring

    def routes(self, server: WebServer) -> None:
        """Adds every console route to the server and lets /console hand out links."""
        add = server.add
        tag = "console"
        add("GET", "/console", self._home, summary="Console: to the first page, or to sign-in", tag=tag)
        add("GET", "/console/signin/{token}", self._signin_page, summary="Console sign-in: confirm", tag=tag)
        add("POST", "/console/signin/{token}", self._signin, summary="Console sign-in: use the link", tag=tag)
        add("POST", "/console/logout", self._protected(self._logout, "POST"), summary="Console: sign out", tag=tag)
        add("POST", "/console/language", self._protected(self._language, "POST"),
            summary="Console: switch language", tag=tag)
        for p in sorted(PAGES, key=lambda p: p.order):
            add(p.method, p.path, self._protected(self._page(p), p.method), summary=p.summary or p.path, tag=tag)
        server.app.router.add_static("/console/static", STATIC, append_version=True)
        console_command.LINK.url = self.url
        console_command.LINK.lifetime = self.link_lifetime

    def set_url(self, url: str) -> None:
        """The address links point to, once known (a test server's port is picked at start)."""
        self.url = url.rstrip("/")
        self.secure = self.url.startswith("https://")
        self.origin = _origin(self.url)
        console_command.LINK.url = self.url

    # ------------------------------------------------------------ rendering

    def render(self, template: str, t: T, status: int = 200, viewer: Viewer | _Shown | None = None,
               **values: Any) -> web.Response:
        nav = [(p.path, p.nav) for p in sorted(PAGES, key=lambda p: p.order) if p.nav and p.method == "GET"]
        html = self.env.get_template(template).render(
            _=t, t=t, viewer=viewer, nav=nav, languages=LANGUAGES, language=t.language,
            csrf=viewer.csrf if viewer else "", static=self.static_url, **values)
        resp = web.Response(text=html, status=status, content_type="text/html", charset="utf-8")
        _secure_headers(resp)
        return resp

    def static_url(self, name: str) -> str:
        return f"/console/static/{name}"

    def error(self, request: web.Request, t: T, status: int, message: str,
              viewer: Viewer | _Shown | None = None) -> web.Response:
        return self.render("error.html", t, status=status, viewer=viewer, message=message)

    # ------------------------------------------------------------ the protected pages

    def _page(self, p: Page):
        async def run(viewer: Viewer, request: web.Request) -> web.StreamResponse:
            out = await p.fn(viewer, request)
            if isinstance(out, web.StreamResponse):
                return out
            template = out.pop("_template", None) or p.template or "error.html"  # e.g. an htmx fragment
            return self.render(template, viewer.t, viewer=viewer, **out)

        return run

    def _protected(self, fn: Callable[[Viewer, web.Request], Awaitable[web.StreamResponse]], method: str):
        async def handler(request: web.Request) -> web.StreamResponse:
            t = T(self.office.language)
            shown = None
            try:
                async with self.office.sessionmaker() as session, session.begin():
                    ctx = self.office.ctx(session)
                    ctx.via_channel = "console"
                    sess = await console_access.session_of(ctx, request.cookies.get(COOKIE))
                    if sess is None:
                        if method in SAFE_METHODS:
                            raise web.HTTPSeeOther("/console")
                        raise Refused(401, "请先登录：在聊天中向机器人发送 /console 获取登录链接。")
                    person = await session.get(Person, sess.person_id)
                    t = T(sess.language or person.language or self.office.language)
                    if method not in SAFE_METHODS:
                        await self._check_csrf(request, sess)
                    viewer = Viewer(ctx, person, sess, t, await scope.staff_paths(ctx, person.id), request)
                    # what the error page shows of the viewer, readable after a rollback expired the rows
                    shown = _Shown(_Named(person.name), sess.csrf, request)
                    resp = await fn(viewer, request)
            except web.HTTPException:
                raise
            except Refused as e:
                return self.error(request, t, e.status, t(e.msgid, **e.params), shown)
            except DomainError as e:
                status = next((c for cls, c in STATUS_OF.items() if isinstance(e, cls)), 400)
                return self.error(request, t, status, e.render(t), shown)
            except Exception:
                log.exception("console %s %s failed", request.method, request.path)
                return self.error(request, t, 500, t("抱歉，系统出了点问题，您的操作没有生效，请稍后再试。"))
            if method not in SAFE_METHODS and self.on_commit:
                self.on_commit()  # cards and notices the action wrote are due now
            return resp

        return handler

    async def _check_csrf(self, request: web.Request, sess: ConsoleSession) -> None:
        self._check_origin(request)
        sent = request.headers.get("X-CSRF-Token")
        if sent is None and request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
            sent = (await request.post()).get("csrf")
        if not isinstance(sent, str) or not secrets.compare_digest(sent, sess.csrf):
            raise Refused(403, "页面已过期或请求无效，请刷新页面后重试。")

    def _check_origin(self, request: web.Request) -> None:
        """A state-changing request must come from the console's own pages: Origin (or, when a
        browser sends none, Referer) is the console's address or the address it was asked at."""
        sent = request.headers.get("Origin") or _origin(request.headers.get("Referer") or "")
        own = {self.origin, f"{request.scheme}://{request.host}"}
        if not sent or sent not in own:
            raise Refused(403, "页面已过期或请求无效，请刷新页面后重试。")

    # ------------------------------------------------------------ sign-in, sign-out

    async def _home(self, request: web.Request) -> web.StreamResponse:
        async with self.office.sessionmaker() as session:
            sess = await console_access.session_of(self.office.ctx(session), request.cookies.get(COOKIE))
        if sess is not None:
            first = next((p.path for p in sorted(PAGES, key=lambda p: p.order) if p.nav), None)
            if first:
                raise web.HTTPSeeOther(first)
        t = T(_browser_language(request) or self.office.language)
        return self.render("signin.html", t, status=200, token=None)

    async def _signin_page(self, request: web.Request) -> web.StreamResponse:
        """A link preview (a chat app fetching the URL) must not use the link up: GET only shows a
        button; the POST it sends signs in."""
        t = T(_browser_language(request) or self.office.language)
        return self.render("signin.html", t, token=request.match_info["token"][:64])

    async def _signin(self, request: web.Request) -> web.StreamResponse:
        t = T(_browser_language(request) or self.office.language)
        try:
            self._check_origin(request)
        except Refused as e:
            return self.error(request, t, e.status, t(e.msgid))
        address = client_address(request)
        try:
            async with self.office.sessionmaker() as session, session.begin():
                ctx = self.office.ctx(session)
                try:
                    raw, sess = await console_access.sign_in(ctx, request.match_info["token"], address,
                                                             self.session_hours)
                    refusal = None
                except codes.CodeRefused as err:
                    refusal = err  # the wrong try is written; commit it
        except Exception:
            log.exception("console sign-in failed")
            return self.error(request, t, 500, t("抱歉，系统出了点问题，您的操作没有生效，请稍后再试。"))
        if refusal is not None:
            status = 429 if refusal.detail == "locked" else 403
            return self.render("signin.html", t, status=status, token=None, refused=refusal.render(t))
        resp = web.HTTPSeeOther("/console")
        resp.set_cookie(COOKIE, raw, max_age=int(self.session_hours * 3600), path="/console", httponly=True,
                        secure=self.secure, samesite="Lax")
        raise resp

    async def _logout(self, viewer: Viewer, request: web.Request) -> web.StreamResponse:
        await console_access.sign_out(viewer.ctx, request.cookies.get(COOKIE))
        resp = redirect("/console")
        resp.del_cookie(COOKIE, path="/console")
        return resp

    async def _language(self, viewer: Viewer, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        lang = normalize(str(form.get("language") or ""))
        viewer.session.language = lang if lang in LANGUAGES else None
        back = str(form.get("back") or "/console")
        return redirect(back if back.startswith("/console") and "//" not in back else "/console")


def redirect(location: str) -> web.Response:
    """303 to a console path, returned (not raised) so the request's transaction commits."""
    return web.Response(status=303, headers={"Location": location})


def client_address(request: web.Request) -> str:
    """The browser's address for the sign-in lock-out. Behind a proxy on this machine every request
    comes from loopback, so then the address the proxy saw (the last X-Forwarded-For entry, which
    the proxy appends itself) counts; from anywhere else the header is the client's word and ignored."""
    remote = request.remote or "unknown"
    forwarded = request.headers.get("X-Forwarded-For")
    if forwarded and remote in ("127.0.0.1", "::1"):
        return forwarded.split(",")[-1].strip()[:64] or remote
    return remote


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""


def _browser_language(request: web.Request) -> str | None:
    accept = request.headers.get("Accept-Language", "")
    first = accept.split(",")[0].split(";")[0].strip()
    return first or None


def _secure_headers(resp: web.StreamResponse) -> None:
    resp.headers["X-Content-Type-Options"] = "nosniff"
    resp.headers["X-Frame-Options"] = "DENY"
    resp.headers["Referrer-Policy"] = "same-origin"
    resp.headers["Cache-Control"] = "no-store"
